"""``make bench``: speed and accuracy of the assistant against stock Rasa, and crm_ml figures.

See :mod:`bench.run` for what one run measures.
"""
