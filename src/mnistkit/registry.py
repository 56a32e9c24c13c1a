"""Datasets as data: their files, sizes, checksums, mirrors, classes and metadata.

Nothing here does I/O.  Adding a dataset of the same shape as one already here
(four IDX files like MNIST, splits of a zip archive like EMNIST, a label table
like QMNIST) is adding an entry, not writing code: built-in ones are listed in
:data:`DATASETS`; your own are added with :func:`register_dataset`.
Checksums carry their algorithm (``sha256:...``, ``md5:...``) and describe the
file as published and, where known, the decoded IDX bytes, so that an
uncompressed or re-compressed copy of the right data is accepted and anything
else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ArgumentError


@dataclass(frozen=True, repr=False)
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
        ``"md5:<hex>"`` of the file as published; checked only when neither
        SHA-256 is known (QMNIST publishes md5 sums only).
    kind : {"idx", "archive"}
        An IDX file (raw, gzip or xz), or an archive of other files, checked
        by its own size and checksum (``decoded_size`` is then its size).
    archive : str or None
        For a member of an archive: the name of the archive's spec in the
        same dataset.  The member is read from the verified archive, never
        unpacked to disk.
    member : str or None
        The member's path inside the archive.
    transposed : bool
        The images are stored transposed (EMNIST): each 28x28 image must be
        transposed to look upright.  The cache holds them upright.
    """

    name: str
    shape: tuple[int, ...]
    type_code: int
    decoded_size: int
    decoded_sha256: str | None = None
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    kind: str = "idx"
    archive: str | None = None
    member: str | None = None
    transposed: bool = False

    def __repr__(self) -> str:
        size = f", {self.size:,} bytes" if self.size else ""
        where = f", in {self.archive}" if self.archive else ""
        shape = f", shape={self.shape}" if self.kind == "idx" else ", archive"
        return f"FileSpec({self.name!r}{shape}{size}{where})"

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
        if self.kind != "idx":
            return (self.name,)
        stem = self.stem
        dotted = stem.replace("-idx", ".idx", 1)
        names = [self.name, stem, dotted, stem + ".gz", dotted + ".gz", stem + ".xz", dotted + ".xz"]
        return tuple(dict.fromkeys(names))  # de-duplicated, order kept


@dataclass(frozen=True)
class Split:
    """A named part of a dataset: an images file and a labels file.

    ``rows=(a, b)`` makes the split rows ``a:b`` of both files (QMNIST's
    ``test10k`` is rows 0:10000 of its ``test`` files).
    """

    name: str
    images: str
    labels: str
    rows: tuple[int, int] | None = None


@dataclass(frozen=True, repr=False)
class Dataset:
    """A dataset: files, where to get them, and what they mean.

    ``repr()`` is one line; in a notebook a dataset shows as a card (name,
    splits and sizes, classes, licence, whether it is here, and sample
    images when its cache is built).
    """

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
    #: Folder shared by datasets built from the same files ("emnist"); "" means ``name``.
    shared_folder: str = ""
    #: The smallest label: EMNIST letters labels run 1..26 as published, so 1 there.
    label_offset: int = 0
    #: Names of the label columns when labels are a table (QMNIST); the class is column 0.
    label_columns: tuple[str, ...] = ()
    #: Path, inside the archive file, of a text file mapping labels to character codes (EMNIST).
    mapping: str | None = None

    def __repr__(self) -> str:
        splits = ", ".join(f"{split.name} {self.split_size(split.name):,}" for split in self.splits)
        title = self.title if len(self.title) <= 50 else self.title[:50].rsplit(" ", 1)[0].rstrip(" ,:(") + "…"
        return f"<Dataset {self.name}: {title}; {splits}; {self.num_classes} classes>"

    def _repr_html_(self) -> str:
        """The notebook card: see :func:`mnistkit.notebook.dataset_card_html`."""
        from .notebook import dataset_card_html

        return dataset_card_html(self)

    @property
    def folder(self) -> str:
        """Name of the dataset's folder in the data home (and on mirrors)."""
        return self.shared_folder or self.name

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

    def class_name(self, label: int) -> str:
        """The class name of a label as stored (``label_offset`` taken into account)."""
        index = int(label) - self.label_offset
        return self.classes[index] if 0 <= index < len(self.classes) else str(label)

    def class_index(self, labels: np.ndarray) -> np.ndarray:
        """Class numbers 0..num_classes-1 of labels as stored or loaded.

        Takes the class column of a label table (QMNIST) and removes the
        ``label_offset`` (EMNIST letters: 1..26 become 0..25).
        """
        labels = np.asarray(labels)
        if labels.ndim == 2:
            labels = labels[:, 0]
        return labels.astype(np.int64) - self.label_offset

    def label_map(self) -> dict[int, str]:
        """Every label as stored -> its class name: the published mapping, from the registry alone.

        For EMNIST this is the content of the archive's ``emnist-<split>-mapping.txt``
        (``{0: "0", ..., 10: "A", ...}``; letters: ``{1: "Aa", ..., 26: "Zz"}``).
        """
        return {self.label_offset + i: name for i, name in enumerate(self.classes)}

    def mapping_text(self) -> str:
        """The label mapping in the published EMNIST format: one ``label code [code ...]`` line per label."""
        return "".join(
            f"{label} {' '.join(str(ord(char)) for char in chars)}\n" for label, chars in self.label_map().items()
        )

    def split_size(self, name: str) -> int:
        """Number of examples in split ``name``."""
        split = self.split(name)
        if split.rows is not None:
            return split.rows[1] - split.rows[0]
        return self.file(split.images).shape[0]

    def info(self) -> dict:
        """Everything known about the dataset without downloading it, as plain data.

        Returns
        -------
        dict
            name, title, description, homepage, license, citation, classes,
            num_classes, label_offset, label_columns, image_shape, splits (name
            -> number of examples), transposed, folder, mirrors and files (name
            -> published size in bytes, None where unknown).  Files read from an
            archive are listed under the archive.
        """
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "homepage": self.homepage,
            "license": self.license,
            "citation": self.citation,
            "classes": list(self.classes),
            "num_classes": self.num_classes,
            "label_offset": self.label_offset,
            "label_columns": list(self.label_columns),
            "image_shape": list(self.image_shape),
            "splits": {split.name: self.split_size(split.name) for split in self.splits},
            "transposed": any(spec.transposed for spec in self.files),
            "folder": self.folder,
            "mirrors": list(self.mirrors),
            "files": {spec.name: spec.size for spec in self.files if spec.archive is None},
        }


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

# --- entry builders: decoded sizes follow from the shapes ---------------------------------------

_ITEM_SIZE = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}  # IDX type code -> bytes per item


def idx_file(name: str, shape: tuple[int, ...], type_code: int = 0x08, **fields) -> FileSpec:
    """A FileSpec for an IDX file whose decoded size is its header plus ``shape``'s items."""
    items = 1
    for dim in shape:
        items *= dim
    size = 4 + 4 * len(shape) + items * _ITEM_SIZE[type_code]
    return FileSpec(name, shape=tuple(shape), type_code=type_code, decoded_size=size, **fields)


def archive_file(name: str, size: int | None, **fields) -> FileSpec:
    """A FileSpec for an archive, checked by its own size and checksum."""
    return FileSpec(name, shape=(), type_code=0, decoded_size=size or 0, size=size, kind="archive", **fields)


_MNIST_LAYOUT = {  # published name -> shape, shared by the datasets that copy MNIST's layout
    "train-images-idx3-ubyte.gz": (60000, 28, 28),
    "train-labels-idx1-ubyte.gz": (60000,),
    "t10k-images-idx3-ubyte.gz": (10000, 28, 28),
    "t10k-labels-idx1-ubyte.gz": (10000,),
}


def _mnist_layout(pins: dict[str, tuple[int, str, str]], decoded: dict[str, str] | None = None) -> tuple[FileSpec, ...]:
    """MNIST's four files with other content.

    ``pins`` maps name -> (size, md5, sha256) of the published .gz; ``decoded`` maps name -> the
    SHA-256 of its decoded IDX bytes, where measured on the published file.
    """
    decoded = decoded or {}
    return tuple(
        idx_file(
            name,
            _MNIST_LAYOUT[name],
            size=size,
            md5="md5:" + md5,
            sha256="sha256:" + sha256,
            decoded_sha256="sha256:" + decoded[name] if name in decoded else None,
        )
        for name, (size, md5, sha256) in pins.items()
    )


# --- Fashion-MNIST and KMNIST: MNIST's layout -------------------------------------------------------
# Sizes, md5 and sha256 of the published .gz files: ../shared/reference/datasets.md.  Their decoded
# checksums are not published: the decoded SHA-256 sums below were measured on the published files
# (../shared/data/<dataset>/, each with the published md5 and sha256), so a decompressed or re-compressed
# copy of the same data is accepted, as for MNIST.  KMNIST's train images were not available to measure:
# that file is checked by its published SHA-256 alone (plus the IDX header).

FASHION_MNIST = Dataset(
    name="fashion-mnist",
    title="Fashion-MNIST: Zalando article images",
    files=_mnist_layout(
        {
            "train-images-idx3-ubyte.gz": (
                26421880,
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            ),
            "train-labels-idx1-ubyte.gz": (
                29515,
                "25c81989df183df01b3e8a0aad5dffbe",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            ),
            "t10k-images-idx3-ubyte.gz": (
                4422102,
                "bef4ecab320f06d8554ea6380940ec79",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            ),
            "t10k-labels-idx1-ubyte.gz": (
                5148,
                "bb300cfdad3c16e7a12a480ee83cd310",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            ),
        },
        decoded={
            "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ),
    splits=MNIST.splits,
    mirrors=(
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # http only: safe, the sha256 is pinned
    ),
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    license="MIT",
    citation=(
        "@online{xiao2017fashion,\n"
        "  author={Han Xiao and Kashif Rasul and Roland Vollgraf},\n"
        "  title={Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms},\n"
        "  year={2017}, eprint={1708.07747}, archivePrefix={arXiv}\n}"
    ),
    description="70,000 28x28 grey images of 10 kinds of clothing (60,000 train, 10,000 test); a drop-in for MNIST.",
)

KMNIST = Dataset(
    name="kmnist",
    title="Kuzushiji-MNIST: cursive Japanese (Hiragana) characters",
    files=_mnist_layout(
        {
            "train-images-idx3-ubyte.gz": (
                18165135,
                "bdb82020997e1d708af4cf47b453dcf7",
                "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
            ),
            "train-labels-idx1-ubyte.gz": (
                29497,
                "e144d726b3acfaa3e44228e80efcd344",
                "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
            ),
            "t10k-images-idx3-ubyte.gz": (
                3041136,
                "5c965bf0a639b31b8f53240b1b52f4d7",
                "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
            ),
            "t10k-labels-idx1-ubyte.gz": (
                5120,
                "7320c461ea6c1c855c0b718fb2a4b134",
                "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
            ),
        },
        decoded={  # train images: not measured (not available here)
            "train-labels-idx1-ubyte.gz": "2a16eeae62da984b8bd24fa32e31d47291f01dac3fe84d5594f304f71e7d374b",
            "t10k-images-idx3-ubyte.gz": "76fbd229ce87db80dd281af5e6670de4ad0e42fb30a7bd643972994c47c1f42e",
            "t10k-labels-idx1-ubyte.gz": "a11dc742be8e781a40a92f53d6a4957e7b7d36df2faa097659131ebfd8fd60c6",
        },
    ),
    splits=MNIST.splits,
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),  # the only one; http, sha256 pinned
    classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    homepage="http://codh.rois.ac.jp/kmnist/",
    license="CC BY-SA 4.0",
    citation=(
        "@online{clanuwat2018deep,\n"
        "  author={Tarin Clanuwat and Mikel Bober-Irizar and Asanobu Kitamoto and Alex Lamb and Kazuaki Yamamoto "
        "and David Ha},\n"
        "  title={Deep Learning for Classical Japanese Literature},\n"
        "  year={2018}, eprint={1812.01718}, archivePrefix={arXiv}\n}"
    ),
    description="70,000 28x28 grey images of 10 Hiragana characters (60,000 train, 10,000 test); a drop-in for MNIST.",
)

# --- EMNIST: six datasets read from one zip archive --------------------------------------------------
# The archive's size, md5 and sha256, the member names, the split sizes and the class counts:
# ../shared/reference/datasets.md.  The members' own checksums are not published: the archive's
# SHA-256, the zip and gzip CRC-32s and the IDX header (type and shape) are what vouch for them.
# Classes are the characters of the published emnist-<split>-mapping.txt files (label -> ASCII codes).

EMNIST_ARCHIVE = archive_file(
    "gzip.zip",
    561753746,
    md5="md5:58c8d27c78d21e728a6bc7b3cc06412e",
    sha256="sha256:fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e",
)
_DIGITS = tuple("0123456789")
_UPPER = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LOWER = tuple("abcdefghijklmnopqrstuvwxyz")
_MERGED = _DIGITS + _UPPER + tuple("abdefghnqrt")  # lowercase letters unlike their capitals keep a class

_EMNIST_CITATION = (
    "@inproceedings{cohen2017emnist,\n"
    "  title={EMNIST: Extending MNIST to handwritten letters},\n"
    "  author={Cohen, Gregory and Afshar, Saeed and Tapson, Jonathan and van Schaik, Andr{\\'e}},\n"
    "  booktitle={2017 International Joint Conference on Neural Networks (IJCNN)}, pages={2921--2926}, year={2017}\n}"
)


def emnist_split(
    split: str,
    classes: tuple[str, ...],
    n_train: int,
    n_test: int,
    about: str,
    label_offset: int = 0,
    member_sizes: dict[str, int] | None = None,
) -> Dataset:
    """The registry entry of EMNIST split ``split`` (``"byclass"``, ``"letters"``, ...).

    ``member_sizes`` maps ``"train-images"``, ``"test-labels"``, ... to the compressed size of that
    member where it is known.
    """
    files = [EMNIST_ARCHIVE]
    member_sizes = member_sizes or {}
    for part, n in (("train", n_train), ("test", n_test)):
        for what, shape in (("images-idx3", (n, 28, 28)), ("labels-idx1", (n,))):
            name = f"emnist-{split}-{part}-{what}-ubyte.gz"
            size = member_sizes.get(f"{part}-{what.split('-')[0]}")
            files.append(
                idx_file(
                    name,
                    shape,
                    archive=EMNIST_ARCHIVE.name,
                    member=f"gzip/{name}",
                    transposed=what[0] == "i",
                    size=size,
                )
            )
    return Dataset(
        name=f"emnist-{split}",
        title=f"EMNIST {split}: handwritten {about}",
        files=tuple(files),
        splits=(
            Split("train", files[1].name, files[2].name),
            Split("test", files[3].name, files[4].name),
        ),
        # Both come and go; one has served an HTML page under this name (refused: size and sha256 are pinned).
        mirrors=("https://biometrics.nist.gov/cs_links/EMNIST/", "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/"),
        classes=classes,
        homepage="https://www.nist.gov/itl/products-and-services/emnist-dataset",
        license="NIST Special Database 19 terms of use (see the homepage)",
        citation=_EMNIST_CITATION,
        description=(
            f"{n_train + n_test:,} 28x28 grey images of handwritten {about} in {len(classes)} classes "
            f"({n_train:,} train, {n_test:,} test), from NIST Special Database 19."
        ),
        shared_folder="emnist",
        label_offset=label_offset,
        mapping=f"gzip/emnist-{split}-mapping.txt",
    )


EMNIST = (
    emnist_split("byclass", _DIGITS + _UPPER + _LOWER, 697932, 116323, "digits and letters"),
    emnist_split("bymerge", _MERGED, 697932, 116323, "digits and letters (similar cases merged)"),
    emnist_split("balanced", _MERGED, 112800, 18800, "digits and letters (balanced classes)"),
    # Labels 1..26 as published (class k is the k-th letter, either case); see Dataset.label_offset.
    # 124,800 / 20,800 (4,800 and 800 per letter) as the published files' IDX headers declare; the
    # 88,800 / 14,800 of a table in the EMNIST paper are not what the archive holds.  Member sizes:
    # ../shared/reference/datasets.md (a third-party copy of the archive's members).
    emnist_split(
        "letters",
        tuple(u + w for u, w in zip(_UPPER, _LOWER, strict=True)),
        124800,
        20800,
        "letters",
        label_offset=1,
        member_sizes={"train-images": 30804864, "train-labels": 79283, "test-images": 5039157, "test-labels": 144},
    ),
    emnist_split("digits", _DIGITS, 240000, 40000, "digits"),
    emnist_split("mnist", _DIGITS, 60000, 10000, "digits (MNIST's balance)"),
)

# --- QMNIST: MNIST reconstructed, with its full NIST provenance ----------------------------------------
# File names, md5 sums (only md5s are published), split sizes and the label columns:
# ../shared/reference/datasets.md.  The sizes, SHA-256 and decoded SHA-256 of the three label files
# were measured on the published files (../shared/data/qmnist/, each with its published md5); the image
# files were not available: their sizes are unknown (None) and their md5 alone vouches for them.

QMNIST = Dataset(
    name="qmnist",
    title="QMNIST: MNIST reconstructed from NIST, with its test set extended to 60,000",
    files=(
        idx_file("qmnist-train-images-idx3-ubyte.gz", (60000, 28, 28), md5="md5:ed72d4157d28c017586c42bc6afe6370"),
        idx_file(
            "qmnist-train-labels-idx2-int.gz",
            (60000, 8),
            0x0C,
            size=463024,
            md5="md5:0058f8dd561b90ffdd0f734c6a30e5e4",
            sha256="sha256:2c05dc77f6b916b38e455e97ab129a42a444f3dbef09b278a366f82904e0dd9f",
            decoded_sha256="sha256:bb1b6e1ec7b04fd5696f1ed50b5f58f8ef195118edd5c93c81783df9740b8ac5",
        ),
        idx_file("qmnist-test-images-idx3-ubyte.gz", (60000, 28, 28), md5="md5:1394631089c404de565df7b7aeaf9412"),
        idx_file(
            "qmnist-test-labels-idx2-int.gz",
            (60000, 8),
            0x0C,
            size=526800,
            md5="md5:5b5b05890a5e13444e108efe57b788aa",
            sha256="sha256:9fbcbe594c3766fdf4f0b15c5165dc0d1e57ac604e01422608bb72c906030d06",
            decoded_sha256="sha256:92d0ccb8c25f9c6534270fb4be7e1d24a1c6d315edfc8a638bfbd31c70f362dd",
        ),
        idx_file("xnist-images-idx3-ubyte.xz", (402953, 28, 28), md5="md5:7f124b3b8ab81486c9d8c2749c17f834"),
        idx_file(
            "xnist-labels-idx2-int.xz",
            (402953, 8),
            0x0C,
            size=958144,
            md5="md5:5ed0e788978e45d4a8bd4b7caec3d79d",
            sha256="sha256:db042968723ec2b7aed5f1beac25d2b6e983b9286d4f4bf725f1086e5ae55c4f",
            decoded_sha256="sha256:4aea10456d9cf8fcc7bcd377f8ccbc5b0c02ffe0354a7137204794d6b620aa38",
        ),
    ),
    splits=(
        Split("train", "qmnist-train-images-idx3-ubyte.gz", "qmnist-train-labels-idx2-int.gz"),
        Split("test", "qmnist-test-images-idx3-ubyte.gz", "qmnist-test-labels-idx2-int.gz"),
        # The first 10,000 test rows are MNIST's test set; the other 50,000 the "lost" digits.
        Split("test10k", "qmnist-test-images-idx3-ubyte.gz", "qmnist-test-labels-idx2-int.gz", rows=(0, 10000)),
        Split("test50k", "qmnist-test-images-idx3-ubyte.gz", "qmnist-test-labels-idx2-int.gz", rows=(10000, 60000)),
        Split("nist", "xnist-images-idx3-ubyte.xz", "xnist-labels-idx2-int.xz"),
    ),
    mirrors=("https://raw.githubusercontent.com/facebookresearch/qmnist/master/",),
    classes=_DIGITS,
    homepage="https://github.com/facebookresearch/qmnist",
    license="BSD-style (see LICENSE on the homepage)",
    citation=(
        "@incollection{qmnist2019,\n"
        "  title={Cold Case: The Lost MNIST Digits},\n"
        "  author={Chhavi Yadav and L{\\'e}on Bottou},\n"
        "  booktitle={Advances in Neural Information Processing Systems 32}, year={2019}\n}"
    ),
    description=(
        "MNIST's 60,000 training digits and a 60,000-digit test set (MNIST's 10,000 plus 50,000 lost ones) "
        "rebuilt from NIST, and all 402,953 NIST digits; labels carry 8 columns of provenance."
    ),
    # Columns of the int32 label table (QMNIST README): the class first, then where the digit comes from.
    label_columns=(
        "class",
        "hsf_series",
        "writer_id",
        "digit_index",
        "nist_class_code",
        "nist_index",
        "duplicate",
        "unused",
    ),
)

#: Every dataset mnistkit knows, by name.
DATASETS: dict[str, Dataset] = {ds.name: ds for ds in (MNIST, FASHION_MNIST, KMNIST, *EMNIST, QMNIST)}


def datasets() -> list[str]:
    """The names of every known dataset; :func:`get_dataset` gives each one's metadata.

    Returns
    -------
    list of str

    Examples
    --------
    >>> "emnist-letters" in datasets()
    True
    """
    return list(DATASETS)


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


def register_dataset(dataset: Dataset, *, replace: bool = False) -> Dataset:
    """Make ``dataset`` known by its name to every loader, the adapters and the command line.

    Parameters
    ----------
    dataset : Dataset
        The entry: its files (:func:`idx_file`, :func:`archive_file`), splits, mirrors and
        classes.  Its name must be lower case, with ``-`` between words (the form
        :func:`get_dataset` looks up).
    replace : bool, default False
        Replace a dataset already registered under that name (a built-in one included).

    Returns
    -------
    Dataset
        ``dataset``, checked.

    Raises
    ------
    ArgumentError
        For a name already taken (without ``replace``), a malformed name, a split naming a
        file the dataset does not have, two files of one name, or no classes.

    Examples
    --------
    >>> from mnistkit.registry import Dataset, Split, idx_file, register_dataset
    >>> files = (idx_file("train-images.gz", (60000, 28, 28)), idx_file("train-labels.gz", (60000,)))
    >>> mine = Dataset("my-digits", "My digits", files, (Split("train", *[f.name for f in files]),),
    ...                mirrors=("https://data.example.org/my-digits/",), classes=tuple("0123456789"))
    >>> register_dataset(mine).name                                    # doctest: +SKIP
    'my-digits'
    """
    name = dataset.name
    if not isinstance(name, str) or not name or name != name.strip().lower().replace("_", "-"):
        msg = f"dataset name {name!r}: use lower case, with '-' between words (e.g. 'my-digits')"
        raise ArgumentError(msg)
    if name in DATASETS and not replace:
        msg = f"a dataset named {name!r} is already registered; pass replace=True to replace it"
        raise ArgumentError(msg)
    names = [spec.name for spec in dataset.files]
    if len(set(names)) != len(names):
        msg = f"{name}: two files share a name in {names}"
        raise ArgumentError(msg)
    for split in dataset.splits:
        for file_name in (split.images, split.labels):
            if file_name not in names:
                msg = f"{name}: split {split.name!r} names {file_name!r}, which is not one of its files {names}"
                raise ArgumentError(msg)
    if not dataset.classes:
        msg = f"{name}: a dataset needs its classes (e.g. tuple('0123456789'))"
        raise ArgumentError(msg)
    DATASETS[name] = dataset
    return dataset
