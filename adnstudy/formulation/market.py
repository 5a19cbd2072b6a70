"""The bilateral market block: signed trades between microgrids, network fees, reciprocity.

Microgrid m's trade row for partner n is its signed sale s_mn (negative: m
buys), per hour. The pair's network fee f_mn (USD/MWh) is paid on the traded
energy, split between seller and buyer by the case: m pays σ_sell·f·s⁺ as a
seller and σ_buy·f·s⁻ as a buyer (σ_sell + σ_buy = 1). In a centralised model
the market clears when every pair's trades are reciprocal, s_mn + s_nm = 0
(family ``market.reciprocity``); distributed, the ADMM of
:mod:`adnstudy.solve.coordination` reaches the same agreement.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from adnstudy.formulation.families import Families
from adnstudy.solve.coordination import partner_row


@dataclass
class Trades:
    trade: cp.Variable  # partner × hour, signed sale, per unit
    fee_usd: cp.Expression  # this MG's share of the fees


def trade_block(
    fee_usd_per_mwh: np.ndarray, hours: int, base_mva: float, seller_share: float, name: str = "trade",
    weight: np.ndarray | None = None,
) -> Trades:
    """One MG's trades with its partners (``fee_usd_per_mwh``: one fee per partner); ``weight``: what each
    snapshot stands for in the cost (default: once)."""
    n_p = len(fee_usd_per_mwh)
    trade = cp.Variable((n_p, hours), name=name)
    fee = np.asarray(fee_usd_per_mwh, dtype=float)[:, None] * base_mva
    if weight is not None:
        fee = fee * np.asarray(weight, dtype=float)[None, :]
    cost = cp.sum(cp.multiply(fee * seller_share, cp.pos(trade)) + cp.multiply(fee * (1 - seller_share), cp.neg(trade)))
    return Trades(trade=trade, fee_usd=cost)


def reciprocity(trades: list[cp.Variable | None], pairs: list[tuple[int, int]]) -> Families:
    """s_mn + s_nm = 0 for every trading pair (m < n)."""
    fam = Families()
    for m, n in pairs:
        fam.add("market.reciprocity", trades[m][partner_row(m, n)] + trades[n][partner_row(n, m)] == 0)
    return fam
