"""Experiments on the library, apart from it: the trajectory codec bench, the predictability
study and the synthetic stand-in data set they can run on, with the ``vla codec`` commands.

The top layer (``docs/architecture.md``): it may import any module of ``vla``; nothing below
imports it.
"""
