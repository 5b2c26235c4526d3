"""Running the platform: the local launcher (`make up`), docker-compose and Kubernetes manifests."""
