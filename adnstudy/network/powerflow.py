"""AC power flow of a radial feeder: backward/forward sweep, vectorised over snapshots.

With the path matrix ``T`` (branch × bus) of :class:`~adnstudy.network.feeder.Feeder`
one sweep over all snapshots at once is two sparse products::

    I_load = conj(S_load / V)                    (bus × snapshot, per unit)
    I_br   = T · I_load                          backward: each branch carries its subtree
    V      = V0 − Tᵀ · (z ⊙ I_br)                forward: drops along the path

iterated until the largest voltage change is below ``tol``. Loads are constant
power (positive = consumption); a net injection (DG, MG export) is a negative load.
The method is exact for radial networks with no shunt branches, which is the
Baran & Wu data. Used to verify relaxed (SOCP) operating points and for the
base-case checks against the published figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adnstudy.errors import SolveError
from adnstudy.network.feeder import Feeder


@dataclass(frozen=True)
class PowerFlowResult:
    """Per-unit complex voltages and branch currents, bus/branch × snapshot."""

    v: np.ndarray  # complex bus voltages, pu (bus × snapshot)
    i_branch: np.ndarray  # complex branch currents, pu, parent → child (branch × snapshot)
    s_from: np.ndarray  # complex power entering each branch at its sending end, pu
    loss: np.ndarray  # complex branch losses, pu
    iterations: int
    max_mismatch_pu: float
    base_mva: float
    i_base_ka: float

    @property
    def v_pu(self) -> np.ndarray:
        return np.abs(self.v)

    @property
    def va_deg(self) -> np.ndarray:
        return np.degrees(np.angle(self.v))

    @property
    def i_branch_ka(self) -> np.ndarray:
        return np.abs(self.i_branch) * self.i_base_ka

    @property
    def p_loss_mw(self) -> np.ndarray:
        """Total active loss per snapshot."""
        return self.loss.real.sum(axis=0) * self.base_mva

    @property
    def q_loss_mvar(self) -> np.ndarray:
        return self.loss.imag.sum(axis=0) * self.base_mva


def run_powerflow(
    feeder: Feeder,
    p_mw: np.ndarray,
    q_mvar: np.ndarray,
    *,
    v0_pu: float | np.ndarray = 1.0,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> PowerFlowResult:
    """Solve the AC power flow for bus loads ``p_mw``, ``q_mvar`` (bus, or bus × snapshot).

    ``v0_pu`` is the substation voltage (scalar or one per snapshot). Raises
    :class:`SolveError` if the sweep does not converge (typically a load beyond
    the feeder's loadability).
    """
    p = np.asarray(p_mw, dtype=float)
    q = np.asarray(q_mvar, dtype=float)
    if p.ndim == 1:
        p, q = p[:, None], q[:, None]
    if p.shape != q.shape or p.shape[0] != feeder.n_bus:
        raise ValueError(f"loads must be bus × snapshot with {feeder.n_bus} buses; got {p.shape}, {q.shape}")
    n_snap = p.shape[1]
    s = (p + 1j * q) / feeder.base_mva
    s[0] = 0.0  # the substation's own load is served directly by the grid
    z = (feeder.r_pu + 1j * feeder.x_pu)[:, None]
    v0 = np.broadcast_to(np.asarray(v0_pu, dtype=float), (n_snap,)).astype(complex)
    T = feeder.path
    Tt = T.T.tocsr()
    v = np.tile(v0, (feeder.n_bus, 1))
    mismatch = np.inf
    for it in range(1, max_iter + 1):
        i_load = np.conj(s / v)
        i_br = T @ i_load
        v_new = v0[None, :] - Tt @ (z * i_br)
        v_new[0] = v0
        mismatch = float(np.max(np.abs(v_new - v)))
        v = v_new
        if not np.isfinite(mismatch) or np.min(np.abs(v)) < 0.2:
            break
        if mismatch < tol:
            i_load = np.conj(s / v)
            i_br = T @ i_load
            s_from = v[feeder.f] * np.conj(i_br)
            loss = z * np.abs(i_br) ** 2
            return PowerFlowResult(
                v=v,
                i_branch=i_br,
                s_from=s_from,
                loss=loss,
                iterations=it,
                max_mismatch_pu=mismatch,
                base_mva=feeder.base_mva,
                i_base_ka=feeder.i_base_ka,
            )
    raise SolveError(
        f"AC power flow did not converge after {it} sweeps (largest voltage change {mismatch:.3g} pu); "
        f"the load is probably beyond what the feeder can carry: check network.load_scale and the bus loads in "
        f"{feeder.bus_file} (p_mw and q_mvar are in MW and Mvar; loads given in kW are 1000 times too large)"
    )
