"""The Annotated Transformer book's model package: `transformer`, `shared`, `data`,
`viz`.
"""
