"""Networks: field embeddings, the MAMO/MAML recommender, MeLU's network, MAMO's memories."""
