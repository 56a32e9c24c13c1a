"""Datasets as data: their files, sizes, checksums, mirrors, classes and metadata.

Nothing here does I/O.  Adding a dataset of the same shape as MNIST is adding an
entry to :data:`DATASETS`, not writing code.  Checksums carry their algorithm
(``sha256:...``) and describe both the file as published (compressed) and the
decoded IDX bytes, so that an uncompressed or re-compressed copy of the right
data is accepted and anything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ArgumentError


@dataclass(frozen=True)
class FileSpec:
    """One published dataset file.

    Attributes
    ----------
    name : str
        Published file name, e.g. ``"train-images-idx3-ubyte.gz"``.
    shape : tuple of int
        Shape the decoded IDX header must declare.
    type_code : int
        IDX item type the header must declare (0x08 for uint8).
    decoded_size : int
        Size in bytes of the decoded IDX file (header included).
    decoded_sha256 : str or None
        ``"sha256:<hex>"`` of the decoded IDX bytes; the check that counts.
    size : int or None
        Size of the file as published (compressed).
    sha256 : str or None
        ``"sha256:<hex>"`` of the file as published.
    md5 : str or None
        ``"md5:<hex>"`` of the file as published (informational: other loaders pin it).
    """

    name: str
    shape: tuple[int, ...]
    type_code: int
    decoded_size: int
    decoded_sha256: str | None = None
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None

    @property
    def stem(self) -> str:
        """The name without a compression suffix: ``train-images-idx3-ubyte``."""
        for suffix in (".gz", ".xz"):
            if self.name.endswith(suffix):
                return self.name[: -len(suffix)]
        return self.name

    @property
    def spellings(self) -> tuple[str, ...]:
        """Every name under which a hand-placed copy is looked for, published name first.

        People unpacking by hand end up with ``train-images.idx3-ubyte`` (a dot
        before ``idx``) as often as with the published hyphen; either may be
        compressed or not, whatever its suffix says.
        """
        stem = self.stem
        dotted = stem.replace("-idx", ".idx", 1)
        names = [self.name, stem, dotted, stem + ".gz", dotted + ".gz", stem + ".xz", dotted + ".xz"]
        return tuple(dict.fromkeys(names))  # de-duplicated, order kept


@dataclass(frozen=True)
class Split:
    """A named part of a dataset: an images file and a labels file."""

    name: str
    images: str
    labels: str


@dataclass(frozen=True)
class Dataset:
    """A dataset: files, where to get them, and what they mean."""

    name: str
    title: str
    files: tuple[FileSpec, ...]
    splits: tuple[Split, ...]
    mirrors: tuple[str, ...]
    classes: tuple[str, ...]
    homepage: str = ""
    license: str = ""
    citation: str = ""
    image_shape: tuple[int, int] = (28, 28)
    description: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def file(self, name: str) -> FileSpec:
        """The file spec called ``name``."""
        for spec in self.files:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def split(self, name: str) -> Split:
        """The split called ``name``; ArgumentError lists the valid ones."""
        for split in self.splits:
            if split.name == name:
                return split
        valid = ", ".join(repr(s.name) for s in self.splits)
        msg = f"split={name!r} is not a split of {self.name}; choose one of {valid}"
        raise ArgumentError(msg)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def urls(self, spec: FileSpec) -> list[str]:
        """Every built-in URL of ``spec``, in the order they are tried."""
        return [base + spec.name for base in self.mirrors]


# --- MNIST --------------------------------------------------------------------------------------
# Sizes and checksums: ../shared/reference/datasets.md (published .gz files) and the decoded
# SHA-256 sums measured on the published data (they match the published md5 of the decoded files).

_MNIST_CITATION = (
    "@article{lecun1998gradient,\n"
    "  title={Gradient-based learning applied to document recognition},\n"
    "  author={LeCun, Yann and Bottou, L{\\'e}on and Bengio, Yoshua and Haffner, Patrick},\n"
    "  journal={Proceedings of the IEEE}, volume={86}, number={11}, pages={2278--2324}, year={1998}\n}"
)

MNIST = Dataset(
    name="mnist",
    title="MNIST handwritten digits",
    files=(
        FileSpec(
            "train-images-idx3-ubyte.gz",
            shape=(60000, 28, 28),
            type_code=0x08,
            decoded_size=47040016,
            decoded_sha256="sha256:ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            size=9912422,
            sha256="sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            md5="md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ),
        FileSpec(
            "train-labels-idx1-ubyte.gz",
            shape=(60000,),
            type_code=0x08,
            decoded_size=60008,
            decoded_sha256="sha256:65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            size=28881,
            sha256="sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            md5="md5:d53e105ee54ea40749a09fcbcd1e9432",
        ),
        FileSpec(
            "t10k-images-idx3-ubyte.gz",
            shape=(10000, 28, 28),
            type_code=0x08,
            decoded_size=7840016,
            decoded_sha256="sha256:0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            size=1648877,
            sha256="sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            md5="md5:9fb629c4189551a2d022fa330f9573f3",
        ),
        FileSpec(
            "t10k-labels-idx1-ubyte.gz",
            shape=(10000,),
            type_code=0x08,
            decoded_size=10008,
            decoded_sha256="sha256:ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            size=4542,
            sha256="sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            md5="md5:ec29112dd5afa0611ce80d1b7f02629c",
        ),
    ),
    splits=(
        Split("train", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        Split("test", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ),
    # Working mirrors first; the original site has been unreliable since 2017 and is kept last.
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://raw.githubusercontent.com/fgnt/mnist/master/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    classes=tuple(str(d) for d in range(10)),
    homepage="http://yann.lecun.com/exdb/mnist/",
    license="CC BY-SA 3.0",
    citation=_MNIST_CITATION,
    description="70,000 28x28 grey images of handwritten digits 0-9 (60,000 train, 10,000 test).",
)

#: Every dataset mnistkit knows, by name.
DATASETS: dict[str, Dataset] = {ds.name: ds for ds in (MNIST,)}


def get_dataset(name: str) -> Dataset:
    """Look up a dataset by name (case-insensitive; ``_`` and ``-`` are the same).

    Raises
    ------
    ArgumentError
        If no dataset has that name; the message lists the known ones.
    """
    if not isinstance(name, str):
        msg = f"dataset must be a name (str), not {type(name).__name__}"
        raise ArgumentError(msg)
    key = name.strip().lower().replace("_", "-")
    try:
        return DATASETS[key]
    except KeyError:
        valid = ", ".join(repr(n) for n in DATASETS)
        msg = f"dataset={name!r} is not known; choose one of {valid}"
        raise ArgumentError(msg) from None
