"""Layer 7, recommend: the item catalogue a run can recommend from (catalog.py) and the
recommender for new users (recommender.py; docs/serving.md)."""
from mamo_l2l.recommend.catalog import Catalog
from mamo_l2l.recommend.recommender import FifoLock, ItemRecommender

__all__ = ["Catalog", "FifoLock", "ItemRecommender"]
