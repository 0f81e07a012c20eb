"""``--report_to``: the trackers accelerate knows and finds installed. accelerate itself drops a tracker that is not
installed without a word; here naming one is an error before training starts, and the default missing a warning."""

import argparse

DEFAULT_TRACKER = "tensorboard"


def check_report_to(args: argparse.Namespace) -> None:
    """Fill in the default ``--report_to`` and check it: known to accelerate, installed when named, and not given
    ``--hub_token`` to upload."""
    from accelerate.utils import LoggerType

    chosen = args.report_to
    args.report_to = chosen or DEFAULT_TRACKER
    if args.push_to_hub and args.hub_token is not None and "wandb" in args.report_to:
        raise ValueError(
            "--hub_token together with --report_to wandb would upload the token to wandb; log in with "
            "`hf auth login` instead"
        )
    if args.report_to in ("none", "all"):
        return
    known = {tracker.value for tracker in LoggerType}
    names = args.report_to.split(",")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"--report_to: unknown tracker(s) {unknown}; choose from {sorted(known)}, or 'none'")
    missing = [name for name in names if name not in available_trackers(args.report_to)]
    if not missing:
        return
    if chosen is not None:
        raise ValueError(
            f"--report_to {chosen}: {', '.join(missing)} is not installed; {tracker_install_hint(missing)}, or pass "
            "--report_to none"
        )


def tracker_install_hint(missing: list[str]) -> str:
    return "pip install 'hf-vaegan[train]'" if missing == [DEFAULT_TRACKER] else f"pip install {' '.join(missing)}"


def available_trackers(report_to: str) -> list[str]:
    """The trackers of a validated ``--report_to`` ("none" and "all" excluded) that are installed."""
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    available = {LoggerType(tracker).value for tracker in get_available_trackers()}
    return [name for name in report_to.split(",") if name in available]
