"""Unlearning methods; `losses` holds the pure maths they are built from."""
