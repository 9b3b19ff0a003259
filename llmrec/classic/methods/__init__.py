"""One module per classic unlearning method, each registered beside its definition."""
