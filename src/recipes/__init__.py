"""Recipes: the book's tasks trained to the targets they promise (copy task, number
translation).
"""
