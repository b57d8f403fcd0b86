"""Signed downlink commands (CONTRACT.md §3 "Downlink"): verify, dispatch, answer.

``verify`` checks an envelope's signature, shape and validity window; ``dispatcher`` applies a
verified command through the handler registered for its type, together with its receipt and
its ``command.result`` event; ``envelope``, ``keys`` and ``send`` are the signing side, shared by
the operator tools and the upstream service.
"""
