"""Star / galaxy / QSO classification: features, the ANN committee, training, evaluation."""
