"""`vsrdata doctor`: versions, devices and a deformable-convolution self-check."""

from __future__ import annotations

import click

from vsrdata.cli._common import device_option


@click.command("doctor")
@device_option("Check only this device (cpu, cuda, cuda:N); auto: CPU and CUDA when available.")
def command(device):
    """Check that EDVR can run here: versions, devices, DCN self-check.

    Prints torch / torchvision / CUDA versions and, for every device and DCN backend, runs a
    small deformable convolution forward + backward against PyTorch's own conv2d (zero and
    one-pixel offsets) and compares the backends with each other. Exits with status 1 if any
    check fails, so a broken DCN shows up before a training run does.

    \b
    Example:
      vsrdata doctor
      VSRDATA_DCN=torchvision vsrdata doctor --device cuda
    """
    from vsrdata.edvr.doctor import doctor

    report = doctor(device)
    for line in report.lines():
        click.echo(line)
    click.echo("all checks passed" if report.ok else "some checks FAILED")
    if not report.ok:
        raise click.exceptions.Exit(1)
