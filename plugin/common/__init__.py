"""What the Docker plugin and the CSI driver share: this node's identity, waiting for a mount."""
