"""Execute examples/quickstart.ipynb in a real kernel and draw what it shows into docs/quickstart.png.

    python tools/notebook_picture.py [--data ../shared/data] [--out docs/quickstart.png] [--doc docs/notebooks.md]
                                     [--repeat 3]

The notebook runs ``--repeat`` times twice in fresh kernels on the real MNIST files of ``--data`` (a folder holding
``mnist/``, used as an offline mirror): a cold run into an empty data folder (files copied, verified,
decoded and cached) and a warm run (the cache is mapped).  The picture is drawn from the warm run's
outputs (code, text, the PNGs as they are, the HTML card's text and image), so the README shows what
the notebook really produces; the run times and the size of every output go to ``--doc``.
Needs the test extra (nbclient, ipykernel).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import html.parser
import io
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTH, GUTTER, MARGIN = 940, 70, 12
MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
SANS = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _font(path: str, size: int):
    from PIL import ImageFont

    try:
        return ImageFont.truetype(path, size)
    except OSError:  # no DejaVu here: Pillow's own font
        return ImageFont.load_default(size=size)


def execute(notebook: Path, home: Path, mirror: Path):
    """Run the notebook in a fresh kernel of this interpreter; returns (executed nb, seconds)."""
    import nbformat
    from nbclient import NotebookClient

    spec = home / "jupyter" / "kernels" / "mnistkit-picture"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "mnistkit", "language": "python"}))
    os.environ.update(
        JUPYTER_PATH=str(home / "jupyter"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        MNISTKIT_HOME=str(home / "data"),
        MNISTKIT_MIRROR=str(mirror),
        MNISTKIT_OFFLINE="1",
    )
    nb = nbformat.read(notebook, as_version=4)
    started = time.perf_counter()
    NotebookClient(
        nb, kernel_name="mnistkit-picture", timeout=600, resources={"metadata": {"path": str(home)}}
    ).execute()
    return nb, time.perf_counter() - started


def cell_seconds(cell) -> float:
    """A cell's run time from the timestamps nbclient records (execute_input to execute_reply)."""
    ex = cell.metadata.get("execution", {})
    begin, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
    if not (begin and end):
        return float("nan")
    parse = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(begin)).total_seconds()


def rendered(text: str) -> str:
    """Stream text as a notebook shows it: a carriage return rewrites its line."""
    return "\n".join(re.sub(r"^.*\r(?=[^\r]*$)", "", line.rstrip("\r")) for line in text.split("\n")).strip("\n")


class _Card(html.parser.HTMLParser):
    """The dataset card's HTML as lines of text and images (enough for mnistkit's own card)."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list = [""]

    def handle_starttag(self, tag, attrs):
        if tag in ("tr", "div", "br", "table"):
            self.items.append("")
        elif tag in ("td",):
            self.items[-1] += "  "
        elif tag == "img":
            src = dict(attrs).get("src", "")
            if src.startswith("data:image/png;base64,"):
                self.items.append(base64.b64decode(src.split(",", 1)[1]))
                self.items.append("")

    def handle_data(self, data):
        if isinstance(self.items[-1], str):
            self.items[-1] += data

    def parts(self) -> list:
        return [item for item in self.items if not isinstance(item, str) or item.strip()]


def draw(nb, out: Path) -> tuple[int, int]:
    """Draw the executed notebook as a page; returns the picture's size."""
    from PIL import Image, ImageDraw

    mono, sans, small = _font(MONO, 13), _font(SANS, 14), _font(MONO, 12)
    line_h = 18
    pieces: list[tuple[str, object, object]] = []  # (kind, gutter label, content)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = re.sub(r"[`#]", "", cell.source).strip()
            wrapped = "\n".join(textwrap.fill(p, 100) for p in text.split("\n"))
            pieces.append(("md", "", wrapped))
            continue
        n = cell.get("execution_count")
        pieces.append(("code", f"[{n}]:", cell.source))
        for o in cell.outputs:
            label = f"[{n}]:" if o["output_type"] == "execute_result" else ""
            if o["output_type"] == "stream":
                pieces.append(("text", "", rendered(o["text"])))
            elif o["output_type"] == "error":
                pieces.append(("text", "", "\n".join(o["traceback"])))
            elif "image/png" in o.get("data", {}):
                pieces.append(("png", label, base64.b64decode(o["data"]["image/png"])))
            elif "text/html" in o.get("data", {}):
                card = _Card()
                card.feed(o["data"]["text/html"])
                for part in card.parts():
                    pieces.append(("png" if isinstance(part, bytes) else "card", label, part))
                    label = ""
            elif "text/plain" in o.get("data", {}):
                pieces.append(("text", label, o["data"]["text/plain"]))

    def height(kind, content) -> int:
        if kind == "png":
            return Image.open(io.BytesIO(content)).height + 8
        return line_h * (content.count("\n") + 1) + (12 if kind == "code" else 4)

    total = MARGIN * 2 + sum(height(k, c) + 6 for k, _, c in pieces)
    page = Image.new("RGB", (WIDTH, total), "white")
    ink = ImageDraw.Draw(page)
    y = MARGIN
    for kind, label, content in pieces:
        h = height(kind, content)
        x = GUTTER
        if label:
            colour = (48, 63, 159) if kind == "code" else (216, 67, 21)
            ink.text((MARGIN, y + 4), label, font=small, fill=colour)
        if kind == "code":
            ink.rectangle((x, y, WIDTH - MARGIN, y + h - 2), fill=(245, 245, 245), outline=(224, 224, 224))
            ink.multiline_text((x + 8, y + 6), content, font=mono, fill=(33, 33, 33), spacing=line_h - 13)
        elif kind == "png":
            image = Image.open(io.BytesIO(content)).convert("RGB")
            page.paste(image, (x + 4, y + 4))
        elif kind == "md":
            ink.multiline_text((x, y + 2), content, font=sans, fill=(20, 20, 20), spacing=line_h - 14)
        else:
            ink.multiline_text((x + 4, y + 2), content, font=mono, fill=(20, 20, 20), spacing=line_h - 13)
        y += h + 6
    page.save(out, optimize=True)
    return page.size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebook", type=Path, default=ROOT / "examples" / "quickstart.ipynb")
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data",
        help="a folder holding mnist/ with the four .gz files",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "quickstart.png")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "notebooks.md")
    parser.add_argument("--repeat", type=int, default=3, help="cold + warm runs to take medians over (default 3)")
    args = parser.parse_args(argv)
    if not (args.data / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        print(f"notebook_picture: no MNIST files in {args.data / 'mnist'}; pass --data", file=sys.stderr)
        return 2
    colds, warms = [], []  # (executed notebook, seconds) per repetition
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="mnistkit-nb-") as tmp:
            home = Path(tmp)
            colds.append(execute(args.notebook, home, args.data))
            warms.append(execute(args.notebook, home, args.data))
    warm = warms[-1][0]
    size = draw(warm, args.out)
    med = statistics.median
    rows = []
    code_index = [i for i, c in enumerate(warm.cells) if c.cell_type == "code"]
    for i in code_index:
        outs = []
        for o in warm.cells[i].outputs:
            if o["output_type"] == "stream":
                outs.append(f"{o['name']} {len(o['text'])} chars")
                continue
            data = o.get("data", {})
            for mime, value in data.items():
                if mime == "image/png":
                    from PIL import Image

                    raw = base64.b64decode(value)
                    w, h = Image.open(io.BytesIO(raw)).size
                    outs.append(f"image/png {w}x{h} ({len(raw):,} B)")
                elif mime != "text/plain" or len(data) == 1:
                    outs.append(f"{mime} ({len(value):,} chars)")
        first = warm.cells[i].source.strip().splitlines()[-1][:60]
        cold_s = med(cell_seconds(nb.cells[i]) for nb, _ in colds)
        warm_s = med(cell_seconds(nb.cells[i]) for nb, _ in warms)
        rows.append(f"| `{first}` | {cold_s:.3f} | {warm_s:.3f} | {'; '.join(outs)} |")

    def cells_total(runs):
        return med(sum(cell_seconds(nb.cells[i]) for i in code_index) for nb, _ in runs)

    def whole(runs):
        times = [t for _, t in runs]
        return f"{med(times):.2f} (min {min(times):.2f})"

    nb_bytes = len(json.dumps(warm))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    doc = (
        f"""# Notebooks: the quickstart in a real kernel

Written by `python tools/notebook_picture.py --repeat {args.repeat}` on {dt.date.today()}
({platform.python_implementation()} {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs shared
with other work, load average {load:.1f} at the end): `examples/quickstart.ipynb` executed with nbclient in fresh
ipykernel kernels on the real MNIST files (an offline folder mirror), {args.repeat} times over: first into an
empty data folder (cold: files copied, verified, decoded, cached), then again (warm: the cache is mapped).
Times are medians over the repetitions.

![the executed quickstart](quickstart.png)

| | cold | warm |
|---|---|---|
| whole notebook, kernel start and shutdown included (s) | {whole(colds)} | {whole(warms)} |
| sum of cell run times (s) | {cells_total(colds):.2f} | {cells_total(warms):.2f} |

Per cell (last line of its code; run time in seconds; what the outputs hold):

| cell | cold (s) | warm (s) | outputs |
|---|---|---|---|
"""
        + "\n".join(rows)
        + f"""

The executed notebook is {nb_bytes:,} bytes of JSON; the picture above is {size[0]}x{size[1]} pixels,
drawn from the last warm run's outputs (code and text in DejaVu fonts, the PNGs pasted as they are).
"""
    )
    args.doc.write_text(doc, encoding="utf-8")
    print(f"wrote {args.out} ({size[0]}x{size[1]}) and {args.doc}; cold {whole(colds)} s, warm {whole(warms)} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
