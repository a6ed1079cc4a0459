"""The Train page's run settings form: data, optimiser and export choice, loaded from a run.

Widgets read their values from ``st.session_state`` only (keys ``train_*``), so the settings of a
run that is training can be put into the form (:func:`load_settings_of`) and every tab shows what
is training, not the defaults.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import session
from pipeline.store.run_record import RunRecord
from pipeline.training.fit import (
    LR_SCHEDULES,
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    OPTIMIZERS,
    TrainConfig,
    auto_batch_size,
)
from pipeline.training.inputs import TRUE_PARAM_BOUND, config_from_inputs

FORM_KEYS = {"train_samples": "samples", "train_noise": "noise", "train_seed": "seed",
             "train_epochs": "epochs", "train_optimizer": "optimizer", "train_lr": "learning_rate",
             "train_schedule": "lr_schedule"}
LOADED_FROM = "train_form_loaded_from"
SCHEDULE_HELP = {"cosine": "decays the rate to 1% over the run, so the last epochs settle on the optimum",
                 "constant": "keeps the rate fixed for the whole run"}


def form_defaults(d: TrainConfig) -> dict[str, Any]:
    """The form's starting values, by widget key (from the settings' default run)."""
    return {"train_samples": f"{d.samples:,}", "train_w0": float(d.true_w[0]), "train_w1": float(d.true_w[1]),
            "train_b": float(d.true_b), "train_noise": float(d.noise), "train_epochs": d.epochs,
            "train_batch": "auto", "train_optimizer": d.optimizer, "train_lr": float(d.learning_rate),
            "train_schedule": d.lr_schedule, "train_seed": d.seed, "train_export": True}


def load_settings_of(record: RunRecord) -> None:
    """Put a run's settings into the form (once per run), so a tab opened or reloaded while it
    trains shows what is training, not the defaults."""
    if st.session_state.get(LOADED_FROM) == record.id:
        return
    cfg = record.config
    defaults = form_defaults(TrainConfig())
    for key, field in FORM_KEYS.items():
        if field in cfg:  # the widget's own type: an int field takes an int, a float field a float
            st.session_state[key] = type(defaults[key])(cfg[field])
    if "samples" in cfg:
        st.session_state["train_samples"] = f"{int(cfg['samples']):,}"  # 10,000,000, not 10000000
    true_w = cfg.get("true_w") or []
    if len(true_w) == 2:
        st.session_state["train_w0"], st.session_state["train_w1"] = (float(v) for v in true_w)
    if "true_b" in cfg:
        st.session_state["train_b"] = float(cfg["true_b"])
    st.session_state["train_batch"] = str(cfg["batch_size"]) if cfg.get("batch_size") else "auto"
    st.session_state["train_export"] = record.export_requested
    st.session_state[LOADED_FROM] = record.id


def training_form(running: bool) -> tuple[TrainConfig, bool] | None:
    """The run settings; returns ``(config, export)`` when submitted with valid values,
    shows an ``st.error`` naming the bad value and returns ``None`` otherwise.

    Fields have no browser-side limits: an out-of-range value (samples = 1) is submitted and
    refused with a visible message, instead of a tooltip that makes Train do nothing. Floats
    use ``%g``, so the field shows the exact value it uses (0.004, not 0.00)."""
    d = TrainConfig.from_settings(session.settings())
    for key, default in form_defaults(d).items():  # widgets read their values from here only, so a
        st.session_state.setdefault(key, default)  # run's settings can be loaded into them
    with st.form("train_form"):
        st.markdown("**Data**: `y = x @ w0 + b0 + noise`, inputs `x1`, `x2` uniform in [-10, 10], "
                    "true weights `w0 = (w1, w2)` and bias `b0`")
        row = st.container(horizontal=True)  # wraps onto a new line when narrow: no squeezed labels
        samples = row.text_input("Samples", key="train_samples",
                                 help="Rows of synthetic data, 2 to 10,000,000 (thousands separators are "
                                 "fine). Millions train in seconds per epoch (the batch size grows with the "
                                 "data).")
        w0 = row.number_input("True w1", step=0.5, format="%g", key="train_w0",
                              help=f"Weight of input x1 in the true model (±{TRUE_PARAM_BOUND:,.0f}).")
        w1 = row.number_input("True w2", step=0.5, format="%g", key="train_w1",
                              help=f"Weight of input x2 in the true model (±{TRUE_PARAM_BOUND:,.0f}).")
        b0 = row.number_input("True b", step=0.5, format="%g", key="train_b",
                              help=f"Bias (intercept) of the true model, b0 (±{TRUE_PARAM_BOUND:,.0f}).")
        noise = row.number_input("Noise std", step=0.5, format="%g", key="train_noise",
                                 help="Standard deviation of the Gaussian noise added to y. "
                                 "0 makes the data exactly linear; the loss cannot go below noise².")
        st.markdown("**Training**")
        row = st.container(horizontal=True)
        epochs = row.number_input("Epochs", step=1, key="train_epochs",
                                  help=f"Passes over the data, 1 to {MAX_EPOCHS:,}.")
        batch_text = row.text_input("Batch size", key="train_batch",
                                    help=f"'auto' or a whole number from 1 to {MAX_BATCH_SIZE:,}. Auto is "
                                    f"64 for small data (e.g. {auto_batch_size(800)} at 800 rows) and grows "
                                    "to keep about 100 steps per epoch on large data.")
        optimizer = row.selectbox("Optimizer", OPTIMIZERS, key="train_optimizer",
                                  help="Keras optimizer. Each converges at the default rate; plain "
                                  "SGD diverges above a rate of about 1.")
        lr = row.number_input("Learning rate", step=0.01, format="%g",
                              key="train_lr", help="Initial step size, above 0 and at most 10, in "
                              "standardized units (training sees x and y at mean 0, std 1), so one rate "
                              "suits any true weights.")
        schedule = row.selectbox("LR schedule", LR_SCHEDULES, key="train_schedule",
                                 help="; ".join(f"{k}: {v}" for k, v in SCHEDULE_HELP.items()))
        row = st.container(horizontal=True, vertical_alignment="bottom")
        seed = row.number_input("Seed", step=1, key="train_seed",
                                help="Seeds the data, the initial weights and the shuffling: "
                                "the same settings give the same run.")
        export = row.toggle("Export if it passes the gate", key="train_export", width="content",
                            help="On: a run that converged becomes the next version at once, and a model "
                            "server that polls this folder serves it (TF Serving serves the newest "
                            "version). A run the gate warns about is never exported by itself. Off: "
                            "inspect the result first, then export it with one click.")
        submitted = row.form_submit_button("Train", type="primary", disabled=running, key="train_submit")
    if running:
        st.caption("A run is training on this model folder (one at a time, from any tab): cancel it or "
                   "wait for it to finish to start another.")
    if not submitted:
        return None
    try:
        cfg = config_from_inputs(samples=samples, w1=w0, w2=w1, b=b0, noise=noise, seed=seed, epochs=epochs,
                                 batch=batch_text, optimizer=optimizer, learning_rate=lr, schedule=schedule)
    except ValueError as exc:
        st.error(f"Cannot start this run: {exc}", icon=":material/block:")
        return None
    return cfg, bool(export)
