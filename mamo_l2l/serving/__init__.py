"""Layer 10, serving: the HTTP service and its web page (docs/serving.md). FastAPI and uvicorn
are the optional ``serve`` extra, imported only when the service starts."""
