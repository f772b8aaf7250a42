"""Altair chart builders for the book, one module per kind of chart, and
`show_source`.
"""
