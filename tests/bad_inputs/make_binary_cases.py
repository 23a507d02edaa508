"""Write the binary inputs of the bad-input corpus: feature files, gzip, non-UTF-8, BOM and CRLF.

Each case folder already holds its ``cmd`` and ``expected``; this script adds the input files that
are not plain UTF-8 text with LF line ends. Run it from the repository root after changing a case:

    .venv/bin/python tests/bad_inputs/make_binary_cases.py

The shared graph ``_graph`` (used by the feature cases) has 6 entities, so a valid feature matrix
has 6 rows.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes

ROOT = Path(__file__).resolve().parent
N = 6
BOM = b"\xef\xbb\xbf"

OPENKE = {
    "entity2id.txt": "6\na 0\nb 1\nNew York 2\nd 3\ne 4\nf 5\n",
    "relation2id.txt": "2\nr 0\ns 1\n",
    "train2id.txt": "5\n0 1 0\n1 2 1\n2 3 0\n3 4 1\n4 5 0\n",
    "valid2id.txt": "1\n0 2 1\n",
    "test2id.txt": "1\n1 3 0\n",
}
TSV = {"train.tsv": "a\tr\tb\nb\ts\tc\nc\tr\td\n", "dev.tsv": "a\ts\tc\n", "test.tsv": "b\tr\td\n"}
LAYOUT = {
    "entities.txt": "a\nb\nc\nd\ne\nf\n",
    "relations.txt": "r\ns\n",
    "train.tsv": "a\tr\tb\nb\ts\tc\nc\tr\td\nd\ts\te\ne\tr\tf\n",
    "valid.tsv": "a\ts\tc\n",
    "test.tsv": "b\tr\td\n",
    "entity_text.tsv": "a\tthe first letter\nb\tthe second letter\n",
}


def features(rows: int = N, dim: int = 3, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.arange(rows * dim, dtype=dtype).reshape(rows, dim) / 10


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def pt(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def safetensors(**tensors: torch.Tensor) -> bytes:
    return safetensors_bytes(tensors)


def with_value(tensor: torch.Tensor, row: int, value: float) -> torch.Tensor:
    tensor = tensor.clone()
    tensor[row, 1] = value
    return tensor


def bom_crlf(files: dict[str, str]) -> dict[str, bytes]:
    return {f"data/{name}": BOM + text.replace("\n", "\r\n").encode() for name, text in files.items()}


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


MASK = torch.tensor([True, False, True, True, True, True])
CASES: dict[str, Callable[[], dict[str, bytes]]] = {
    "feature_npy_wrong_row_count": lambda: {"text.npy": npy(features(rows=5).numpy())},
    "feature_npy_integer_dtype": lambda: {"text.npy": npy(np.ones((N, 3), dtype=np.int64))},
    "feature_npy_one_dimensional": lambda: {"text.npy": npy(np.ones(N, dtype=np.float32))},
    "feature_npy_object_dtype": lambda: {"text.npy": npy(np.full((N, 3), None, dtype=object), allow_pickle=True)},
    "feature_npy_nan": lambda: {"text.npy": npy(with_value(features(), 2, float("nan")).numpy())},
    "feature_safetensors_inf": lambda: {
        "text.safetensors": safetensors(features=with_value(features(), 4, float("inf")))
    },
    "feature_safetensors_mask_wrong_shape": lambda: {
        "text.safetensors": safetensors(features=features(), mask=torch.ones(N - 1, dtype=torch.bool))
    },
    "feature_safetensors_mask_not_boolean": lambda: {
        "text.safetensors": safetensors(features=features(), mask=torch.tensor([0, 1, 2, 1, 1, 1]))
    },
    "feature_safetensors_unexpected_entry": lambda: {
        "text.safetensors": safetensors(features=features(), labels=torch.zeros(N))
    },
    "feature_separate_mask_wrong_length": lambda: {
        "text.npy": npy(features().numpy()),
        "mask.npy": npy(np.ones(N + 1, dtype=bool)),
    },
    "feature_mask_given_twice": lambda: {
        "text.safetensors": safetensors(features=features(), mask=MASK),
        "mask.npy": npy(MASK.numpy()),
    },
    "feature_mask_without_feature": lambda: {"mask.npy": npy(MASK.numpy())},
    "feature_option_bad_name": lambda: {"text.npy": npy(features().numpy())},
    "feature_truncated_safetensors": lambda: {"text.safetensors": half(safetensors(features=features()))},
    "feature_truncated_npy": lambda: {"text.npy": half(npy(features().numpy()))},
    "feature_truncated_pt": lambda: {"text.pt": half(pt(features()))},
    "feature_pt_not_a_tensor": lambda: {"text.pt": pt([1.0, 2.0, 3.0])},
    "feature_pt_wrong_dim_count": lambda: {"text.pt": pt(torch.ones(N, 2, 2))},
    "feature_nan_in_masked_out_row": lambda: {
        "text.safetensors": safetensors(features=with_value(features(), 1, float("nan")), mask=MASK)
    },
    "feature_float64_pt_with_int_mask": lambda: {
        "text.pt": pt({"features": features(dim=2, dtype=torch.float64), "mask": torch.tensor([1, 1, 0, 1, 0, 1])})
    },
    "feature_big_endian_npy": lambda: {"text.npy": npy(features().numpy().astype(">f4"))},
    "convert_bad_feature_leaves_nothing": lambda: {"text.npy": npy(np.ones((N, 3), dtype=np.int64))},
    "train_bad_feature": lambda: {"text.npy": npy(with_value(features(), 2, float("nan")).numpy())},
    "openke_bom_crlf": lambda: bom_crlf(OPENKE),
    "convert_bom_crlf_openke": lambda: bom_crlf(OPENKE),
    "tsv_bom_crlf": lambda: bom_crlf(TSV),
    "layout_bom_crlf": lambda: bom_crlf(LAYOUT),
    "openke_gzip": lambda: {
        **{f"data/{k}": v.encode() for k, v in OPENKE.items() if k != "train2id.txt"},
        "data/train2id.txt.gz": gzip.compress(OPENKE["train2id.txt"].encode(), mtime=0),
    },
    "openke_corrupt_gzip": lambda: {
        **{f"data/{k}": v.encode() for k, v in OPENKE.items() if k != "train2id.txt"},
        "data/train2id.txt.gz": half(gzip.compress(OPENKE["train2id.txt"].encode() * 4, mtime=0)),
    },
    "openke_non_utf8": lambda: {
        **{f"data/{k}": v.encode() for k, v in OPENKE.items()},
        "data/entity2id.txt": OPENKE["entity2id.txt"]
        .replace("New York", "New Y\udcffork")
        .encode("utf-8", "surrogateescape"),
    },
    "tsv_non_utf8_after_bom": lambda: {
        **{f"data/{k}": v.encode() for k, v in TSV.items()},
        "data/dev.tsv": BOM + "a\ts\tc\nb\tr\tCaf\udce9\n".encode("utf-8", "surrogateescape"),
    },
    "config_non_utf8": lambda: {"run.yaml": "seed: 1\ndataset:\n  name: Caf\u00e9\n".encode("latin-1")},
    "config_bom_crlf": lambda: {"run.yaml": BOM + b"seed: 1\r\ntraining:\r\n  epochs: 7\r\n"},
}


def main() -> None:
    for case, make in CASES.items():
        folder = ROOT / case
        if not (folder / "cmd").is_file():
            raise SystemExit(f"{folder}: not a case folder (no cmd file)")
        for name, data in make().items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    print(f"wrote the binary inputs of {len(CASES)} cases under {ROOT}")


if __name__ == "__main__":
    main()
