"""The ``gpu-lpi`` command (DESIGN.md §5).

Expected problems (bad input files, bad job specs, bad options) end with a one-line ``error: ...``
on stderr and exit status 2, never a traceback. Ctrl-C ends a command with exit status 130 (the
shell's convention for SIGINT); what it was writing is rolled back or left for the next command to
finish (see :mod:`gpu_lpi.store.transaction` and :mod:`gpu_lpi.run`).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from gpu_lpi import interrupts
from gpu_lpi.errors import GpuLpiError

_FORMAT_CHOICE = click.Choice(["binance-ws", "binance-archive", "tardis"])
_DEVICE_OPTION = click.option("--device", type=click.Choice(["cpu", "gpu", "auto"]), default="auto",
                              show_default=True, help="cpu, gpu, or auto (GPU when CuPy sees one).")


#: Exit status of a command stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


def _reports_errors(command):
    """Turn expected errors into a one-line message and exit status 2, Ctrl-C into status 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        interrupts.install()
        try:
            result = command(*args, **kwargs)
            interrupts.checkpoint()     # a Ctrl-C that a C callback swallowed still ends in 130
            return result
        except GpuLpiError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def _tell(text: str) -> None:
    click.echo(text, err=True)


def _symbols(text: str) -> list[str]:
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols:
        raise click.BadParameter("expected a comma-separated list such as BTCUSDT,ETHUSDT")
    return symbols


@click.group()
@click.version_option(package_name="gpu-lpi")
def main():
    """GPU-accelerated liquidation-pressure analytics for crypto-futures tick data."""


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the raw files and labels.parquet.")
@click.option("--format", "fmt", type=click.Choice(["binance-ws", "tardis"]), default="binance-ws",
              show_default=True)
@click.option("--symbols", default="BTCUSDT", show_default=True, help="Comma-separated symbols.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default="2024-08-05", show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rate-scale", type=click.FloatRange(min=1e-4), default=1.0, show_default=True,
              help="Scale the calibrated event rates (1 = realistic).")
@_reports_errors
def synth(out_dir, fmt, symbols, start, days, seed, rate_scale):
    """Write a synthetic market with planted, labelled liquidation cascades."""
    from gpu_lpi.synth import synthesize

    try:
        summary = synthesize(out_dir, fmt, _symbols(symbols), start.date(), days, seed,
                             rate_scale=rate_scale, progress=True)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    click.echo(f"wrote {len(summary.files)} file(s), {summary.messages:,} messages, {summary.episodes} planted "
               f"episode(s) in {summary.seconds:.1f} s")
    click.echo(f"labels: {summary.labels_path}")
    click.echo(f"raw files: {summary.out_dir}")


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=_FORMAT_CHOICE, required=True, help="Format of the input files.")
@click.option("--store", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Tick-store folder (created if missing).")
@click.option("--symbols-file", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Extra reference data CSV (symbol,tick_size,lot_size,contract_size,is_inverse).")
@click.option("--strict", is_flag=True, help="Fail on the first rejected line instead of counting it.")
@click.option("--earliest", type=click.DateTime(["%Y-%m-%d"]), default="2017-01-01", show_default=True,
              help="First UTC day a row's timestamp may fall on; earlier rows are rejected.")
@click.option("--latest", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last UTC day a row's timestamp may fall on; later rows are rejected "
                   "[default: up to one day after now].")
@click.option("--tables", default=None, metavar="T1,T2",
              help="Store only these tables (e.g. trades: a trades-only store); the others are counted "
                   "as not selected [default: all].")
@_reports_errors
def ingest(sources, fmt, store, symbols_file, strict, earliest, latest, tables):
    """Ingest raw market data files (or folders) into the tick store."""
    from gpu_lpi.ingest import ingest as run_ingest

    report = run_ingest(sources, fmt, store, symbols_files=symbols_file, strict=strict, progress=True,
                        on_wait=_tell, earliest=earliest, latest=latest,
                        tables=tables.split(",") if tables else None)
    click.echo(report.summary())
    click.echo(f"store: {store}")


@main.command()
@click.argument("job", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run folder (default: runs/<job name>).")
@_DEVICE_OPTION
@click.option("--scheduler", default=None,
              help="Where the job runs, instead of its [cluster] scheduler: 'sync' (this process), "
                   "'local' (a Dask cluster of this machine's cores), 'local-cuda' (one Dask worker "
                   "per GPU), or the address of a running scheduler (tcp://host:8786).")
@_reports_errors
def run(job, out_dir, device, scheduler):
    """Run a job spec (TOML): features, signals, events and the event study into the run folder."""
    # the command line is the application layer: it may use jobs/ (DESIGN.md §1), the library not
    from jobs.runner import run_job_spec

    result = run_job_spec(job, out=out_dir, device=device, scheduler=scheduler, echo=_tell)
    click.echo(result.summary())


@main.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path))
@_reports_errors
def report(run_dir):
    """Write RUN/report.html: the event study's verdict and figures in one self-contained page."""
    from gpu_lpi.report import write_report

    click.echo(write_report(run_dir))


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"),
              show_default=True, help="Fresh folder for everything the demo writes.")
@click.option("--real-data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of real binance-ws captures to run on too (default: ../shared/data if present).")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--rate-scale", type=click.FloatRange(min=1e-4), default=0.1, show_default=True,
              help="Event-rate scale of the synthetic day (1 = realistic rates).")
@_DEVICE_OPTION
@_reports_errors
def demo(out_dir, real_data, seed, rate_scale, device):
    """synth -> ingest -> run on generated data (and real captures when present); print a summary."""
    from gpu_lpi.demo import run_demo

    run_demo(out_dir, real_data=real_data, seed=seed, device=device, rate_scale=rate_scale, echo=click.echo)


def console_main() -> None:
    """The ``gpu-lpi`` executable: :func:`main` with Ctrl-C remembered from the first moment, so that
    an interrupt while the command line is parsed also exits with status 130 (click would say
    "Aborted!" and exit 1)."""
    interrupts.install()
    try:
        code = main.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    console_main()
