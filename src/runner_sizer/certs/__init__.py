"""The webhook's own CA and serving certificate, kept in a Secret inside the cluster."""
