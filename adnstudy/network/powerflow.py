"""AC power flow of a radial feeder: backward/forward sweep, vectorised over snapshots.

With the path matrix ``T`` (branch × bus) of :class:`~adnstudy.network.feeder.Feeder`
one sweep over all snapshots at once is two sparse products::

    I_load = conj(S_load / V)                    (bus × snapshot, per unit)
    I_br   = T · I_load                          backward: each branch carries its subtree
    V      = V0 − Tᵀ · (z ⊙ I_br)                forward: drops along the path

iterated until each snapshot's largest voltage change is below ``tol`` (a
converged snapshot is kept and leaves the sweep, so a snapshot's result does
not depend on which others are solved with it: :func:`run_powerflow_chunks`
gives the one-shot numbers bit for bit with memory bounded by the chunk). Loads are constant
power (positive = consumption); a net injection (DG, MG export) is a negative load.
Bus shunts (line charging, transformer magnetising) draw y·V, and a branch's
off-nominal tap τ scales the voltage it passes on by 1/τ and the current it draws by
1/τ, which the weighted path matrix ``W`` of the feeder carries::

    I_load = conj(S_load / V) + y ⊙ V
    I_br   = W · I_load,     V = c ⊙ V0 − Wᵀ · (z ⊙ I_br)

(``c`` the product of 1/τ along each bus's path). The method is exact for radial
networks. Used to verify relaxed (SOCP) operating points and for the
base-case checks against the published figures.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    shunt_loss: np.ndarray  # complex power drawn by the bus shunts, pu (bus × snapshot; the substation's too)
    iterations: int
    max_mismatch_pu: float
    base_mva: float
    i_base_ka: np.ndarray  # per branch, at its receiving end

    @property
    def v_pu(self) -> np.ndarray:
        return np.abs(self.v)

    @property
    def va_deg(self) -> np.ndarray:
        return np.degrees(np.angle(self.v))

    @property
    def i_branch_ka(self) -> np.ndarray:
        return np.abs(self.i_branch) * np.asarray(self.i_base_ka)[:, None]

    @property
    def p_loss_mw(self) -> np.ndarray:
        """Total active loss per snapshot: the branches' and the shunts' (transformer iron losses)."""
        return (self.loss.real.sum(axis=0) + self.shunt_loss.real.sum(axis=0)) * self.base_mva

    @property
    def q_loss_mvar(self) -> np.ndarray:
        """Reactive power the branches draw per snapshot (their series reactance; shunts not included)."""
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
    y = (feeder.g_shunt_pu + 1j * feeder.b_shunt_pu)[:, None]  # shunt admittance G + jB: draws |V|²(G − jB)
    y[0] = 0.0  # the substation's shunt, like its load, is supplied by the grid directly
    v0 = np.broadcast_to(np.asarray(v0_pu, dtype=float), (n_snap,)).astype(complex)
    T = feeder.weighted_path
    Tt = T.T.tocsr()
    c = feeder.voltage_ratio[:, None]
    # Each snapshot (column) is swept until its own voltage change is below tol and then kept: a column's
    # result depends on that column alone, so solving the hours in chunks gives the same numbers bit for bit.
    v_out = np.empty((feeder.n_bus, n_snap), dtype=complex)
    change_out = np.zeros(n_snap)
    active = np.arange(n_snap)
    s_a, v0_a = s, v0
    v = c * v0[None, :]
    mismatch, iterations = np.inf, 0
    for it in range(1, max_iter + 1):
        i_load = np.conj(s_a / v) + y * v
        i_br = T @ i_load
        v_new = c * v0_a[None, :] - Tt @ (z * i_br)
        v_new[0] = v0_a
        change = np.max(np.abs(v_new - v), axis=0)
        v = v_new
        mismatch, iterations = float(np.max(change)), it
        if not np.isfinite(mismatch) or np.min(np.abs(v)) < 0.2:
            break
        done = change < tol
        if done.any():
            v_out[:, active[done]] = v[:, done]
            change_out[active[done]] = change[done]
            if done.all():
                active = active[:0]
                break
            keep = ~done
            active, v, s_a, v0_a = active[keep], v[:, keep], s_a[:, keep], v0_a[keep]
    if n_snap and not active.size:
        v = v_out
        i_load = np.conj(s / v) + y * v
        i_br = T @ i_load
        s_from = v[feeder.f] * np.conj(i_br) / feeder.tap[:, None]
        loss = z * np.abs(i_br) ** 2
        return PowerFlowResult(
            v=v,
            i_branch=i_br,
            s_from=s_from,
            loss=loss,
            shunt_loss=np.abs(v) ** 2 * np.conj((feeder.g_shunt_pu + 1j * feeder.b_shunt_pu)[:, None]),
            iterations=iterations,
            max_mismatch_pu=float(np.max(change_out)),
            base_mva=feeder.base_mva,
            i_base_ka=feeder.i_base_ka,
        )
    it = iterations
    raise SolveError(
        f"AC power flow did not converge after {it} sweeps (largest voltage change {mismatch:.3g} pu); "
        f"the load is probably beyond what the feeder can carry: check network.load_scale and the bus loads in "
        f"{feeder.bus_file} (p_mw and q_mvar are in MW and Mvar; loads given in kW are 1000 times too large)"
    )


#: Bus·snapshot cells per chunk of a long power flow (:func:`run_powerflow_chunks`): about 16 MB per complex
#: bus × snapshot array, a few hundred MB for the sweep and the chunk's tables at any feeder size.
CHUNK_CELLS = 1_000_000


def chunk_slices(n_snap: int, n_bus: int, cells: int | None = None) -> list[slice]:
    """Consecutive snapshot ranges of at most ``cells`` (default :data:`CHUNK_CELLS`) bus·snapshots each
    (at least one snapshot)."""
    cells = CHUNK_CELLS if cells is None else cells
    step = max(1, cells // max(1, n_bus))
    return [slice(a, min(a + step, n_snap)) for a in range(0, n_snap, step)]


def run_powerflow_chunks(
    feeder: Feeder,
    multipliers: np.ndarray,
    *,
    v0_pu: float = 1.0,
    cells: int | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
    generation: tuple[np.ndarray, np.ndarray] | None = None,
) -> Iterator[tuple[slice, np.ndarray, np.ndarray, PowerFlowResult]]:
    """The power flow of every snapshot of ``multipliers`` (bus × snapshot, per unit of each bus's peak load),
    chunk by chunk: yields the chunk's snapshots, its loads ``p_mw``, ``q_mvar`` and its result.

    ``generation``: (p_mw, q_mvar), bus × snapshot, what existing generation injects; the loads are then the
    net loads, load − generation.

    Memory is bounded by the chunk, not by buses × snapshots; the numbers are those of one
    :func:`run_powerflow` over all snapshots (each snapshot is swept on its own).
    """
    p_peak = feeder.buses["p_mw"].to_numpy()[:, None]
    q_peak = feeder.buses["q_mvar"].to_numpy()[:, None]
    for sl in chunk_slices(multipliers.shape[1], feeder.n_bus, cells):
        mult = multipliers[:, sl]
        p, q = p_peak * mult, q_peak * mult
        if generation is not None:
            p, q = p - generation[0][:, sl], q - generation[1][:, sl]
        yield sl, p, q, run_powerflow(feeder, p, q, v0_pu=v0_pu, tol=tol, max_iter=max_iter)
