"""What any sequence-to-sequence model trains with: batches, the training loop,
learning-rate schedule, loss.
"""
