"""Frame analysers. Every backend returns Rekognition-shaped responses (one input format for indexing)."""
