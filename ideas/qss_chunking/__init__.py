"""State-to-state critics with action chunks (QSS-chunking), with its baselines in one code base.

QSS / D3G (Edwards et al. 2020) learns Q(s, s') and acts through an inverse-dynamics model I(s, s') -> a; Q-chunking
(Li, Zhou, Levine 2025) learns Q(s, a_{t:t+n}) and executes n actions open-loop. `qss` combines them: a critic over
(s_t, s_{t+n}), a proposal of s_{t+n}, and an inverse decoder that emits the n actions leading there (an MLP with
n x |A| outputs, or a GRU unrolling a latent). Baselines: `td3`, `td3_nstep`, `td3_chunk` (a Q-chunking-style critic
Q(s, a_{t:t+n}) with a TD3 chunk actor) and `d3g` as published; `qss` at horizon 1 with the MLP decoder is `d3g`.
Equations and sources: shared/reference/qss_chunking.md.
"""
