"""Mock catalogues: error models, similarity search, hybridisation, weights and splits."""
