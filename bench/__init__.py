"""Benchmarks of escudeiro-pools against the pools a user would pick instead.

Run ``make bench`` (or ``python -m bench`` in the bench environment).
"""
