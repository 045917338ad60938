"""The dataset-size study: base nets on every class from k images per class, and their report."""
