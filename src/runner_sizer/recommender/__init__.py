"""runner-sizer-recommender: sizing recommendations learnt from a Prometheus-compatible API."""
