"""Published scaling-law constants, as data with their sources: Kaplan et al. (2020), Hoffmann et al. (2022)
and Besiroglu et al. (2024), and the grid of starting values Hoffmann et al. fitted from.

Values are as printed in the papers (rounded there); the comments say which equation or table each comes
from, and ``citation`` is the key in ``book/references.bib``. Chapter 7 compares our own fits with them
(:func:`utils.chinchilla.chinchilla_loss`, :func:`utils.chinchilla.kaplan_loss`);
:func:`utils.chinchilla.fit_chinchilla` starts from :data:`HOFFMANN_GRID` (Chapter 5 counts its points).
Plain data: nothing here computes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["KAPLAN_2020", "HOFFMANN_2022", "BESIROGLU_2024", "HOFFMANN_GRID"]

#: Kaplan et al. (2020), "Scaling Laws for Neural Language Models", arXiv:2001.08361.
#: N counts non-embedding parameters, D tokens (GPT-2 BPE on WebText2), losses in nats per token,
#: compute C_min in PF-days. L(N) = (N_c/N)^alpha_N (eq. 1.1), L(D) = (D_c/D)^alpha_D (eq. 1.2),
#: L(C_min) = (C_c_min/C_min)^alpha_C_min (eq. 1.3); the joint law is
#: L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D, whose own fit (Table 2) is ``joint``.
#: Compute-efficient training: N_opt ∝ C_min^0.73, D ∝ C_min^0.27 (Section 1.2).
KAPLAN_2020: dict[str, Any] = {
    "alpha_N": 0.076, "N_c": 8.8e13,          # non-embedding parameters
    "alpha_D": 0.095, "D_c": 5.4e13,          # tokens
    "alpha_C_min": 0.050, "C_c_min": 3.1e8,   # PF-days
    "N_opt_exponent": 0.73,                   # N_opt ∝ C_min^0.73
    "D_opt_exponent": 0.27,                   # D_opt ∝ C_min^0.27 (B ∝ C^0.24, S ∝ C^0.03)
    "joint": {"alpha_N": 0.076, "alpha_D": 0.103, "N_c": 6.4e13, "D_c": 1.8e13},  # Table 2
    "units": "loss in nats/token; N non-embedding parameters; D tokens; C_min in PF-days",
    "citation": "kaplan2020scaling",
    "reference": "Kaplan et al. (2020), Scaling Laws for Neural Language Models, arXiv:2001.08361",
}

#: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models" (Chinchilla), Approach 3
#: (parametric fit, Section 3.3): L(N, D) = E + A/N^alpha + B/D^beta. The paper's compute-optimal
#: exponents (N_opt ∝ C^a, D_opt ∝ C^b): a = b = 0.50 (Approach 1), 0.49/0.51 (Approach 2),
#: 0.46/0.54 (Approach 3);
#: the headline rule is about 20 training tokens per parameter (Chinchilla: 70B parameters, 1.4T tokens).
#: Note: these rounded Approach-3 constants put compute_optimal at ~90 tokens per parameter near Chinchilla's
#: budget, not ~20; Besiroglu et al. (2024) trace this to rounding and an optimiser stopped early.
HOFFMANN_2022: dict[str, Any] = {
    "E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28,
    "a": 0.46, "b": 0.54,                     # Approach 3
    "a_approach1": 0.50, "b_approach1": 0.50,
    "a_approach2": 0.49, "b_approach2": 0.51,
    # Hoffmann et al. (2022), Table 2: the 10th and 90th percentiles of a that they print beside each approach
    # (Approach 3's is the one Besiroglu et al. (2024) call implausibly narrow)
    "a_approach1_ci": (0.488, 0.502), "a_approach2_ci": (0.462, 0.534), "a_ci": (0.454, 0.455),
    "tokens_per_param": 20.0,                 # rule of thumb from Approaches 1 and 2
    "units": "loss in nats/token (MassiveText, SentencePiece); N parameters; D tokens; C = 6ND FLOPs",
    "citation": "hoffmann2022training",
    "reference": "Hoffmann et al. (2022), Training Compute-Optimal Large Language Models, arXiv:2203.15556",
}

#: Besiroglu et al. (2024), "Chinchilla Scaling: A replication attempt": Approach 3 refitted on data
#: reconstructed from Hoffmann et al.'s Figure 4, with the optimiser run to convergence
#: (their standard errors in ``se``). Their exponents agree with Hoffmann et al.'s Approaches 1 and 2
#: (a ≈ b ≈ 0.5).
BESIROGLU_2024: dict[str, Any] = {
    "E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658,
    "se": {"E": 0.03, "A": 124.58, "B": 1293.23, "alpha": 0.02, "beta": 0.02},   # their standard errors
    "a": 0.5126, "b": 0.4874,                 # beta/(alpha+beta), alpha/(alpha+beta)
    "units": "as HOFFMANN_2022",
    "citation": "besiroglu2024chinchilla",
    "reference": "Besiroglu et al. (2024), Chinchilla Scaling: A replication attempt, arXiv:2404.10102",
}

#: The grid of initial values of Hoffmann et al. (2022), Approach 3 (parameters in log space):
#: alpha, beta in {0, 0.5, ..., 2}; e in {-1, -0.5, ..., 1}; a, b in {0, 5, ..., 25}.
HOFFMANN_GRID: dict[str, np.ndarray] = {
    "alpha": np.arange(0.0, 2.01, 0.5), "beta": np.arange(0.0, 2.01, 0.5),
    "e": np.arange(-1.0, 1.01, 0.5), "a": np.arange(0.0, 25.1, 5.0), "b": np.arange(0.0, 25.1, 5.0),
}
