"""Altair chart builders for the book, one module per kind of chart."""
