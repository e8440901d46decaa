"""Gene vocabularies: Geneformer's pickles, the restricted unpickler, our JSON format."""

from __future__ import annotations

import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genoformer.engine.errors import InputError
from genoformer.sc.vocabulary import (
    ENV_DIR,
    PACKAGED,
    GeneVocabulary,
    load_pickle_dict,
    resolve,
)
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def geneformer_dir() -> Path:
    return shared_data("geneformer/gc104M").parent


@pytest.fixture(scope="module")
def v1(geneformer_dir: Path) -> GeneVocabulary:
    return GeneVocabulary.geneformer("V1", geneformer_dir)


@pytest.fixture(scope="module")
def v2(geneformer_dir: Path) -> GeneVocabulary:
    return GeneVocabulary.geneformer("V2", geneformer_dir)


# -- Geneformer's dictionaries ----------------------------------------------------------


def test_v1_dictionaries(v1: GeneVocabulary) -> None:
    assert v1.name == "gc30M" and v1.input_size == 2048
    assert len(v1) == 25_426 and len(v1.medians) == 25_424
    assert len(v1.symbol_to_id) == 40_248
    assert (v1.pad_id, v1.mask_id, v1.cls_id, v1.eos_id) == (0, 1, None, None)
    assert not v1.has_cls_eos
    assert v1.token_ids["ENSG00000000003"] == 2
    assert v1.medians["ENSG00000000003"] == pytest.approx(2.001186019549122, rel=1e-15)
    assert v1.symbol_to_id["MT-TF"] == "ENSG00000210049"
    assert all(k == v for k, v in v1.id_mapping.items())  # V1's mapping is the identity
    genes = v1.gene_ids()
    assert len(genes) == 25_424 and genes[0] == "ENSG00000000003"
    assert [v1.token_ids[g] for g in genes] == list(range(2, 25_426))


def test_v2_dictionaries(v2: GeneVocabulary) -> None:
    assert v2.name == "gc104M" and v2.input_size == 4096
    assert len(v2) == 20_275 and len(v2.medians) == 42_005
    assert len(v2.symbol_to_id) == 63_675 and len(v2.id_mapping) == 173_697
    assert (v2.pad_id, v2.mask_id, v2.cls_id, v2.eos_id) == (0, 1, 2, 3)
    assert v2.has_cls_eos
    assert v2.special_tokens == {"pad": "<pad>", "mask": "<mask>", "cls": "<cls>", "eos": "<eos>"}
    assert v2.symbol_to_id["A1BG"] == "ENSG00000121410"
    assert v2.id_mapping["7SK"] == "ENSG00000271394"
    # Several ids collapse onto one vocabulary gene (Geneformer sums their counts).
    targets: dict[str, list[str]] = {}
    for source, target in v2.id_mapping.items():
        targets.setdefault(target, []).append(source)
    assert sum(len(s) > 2 for s in targets.values()) > 10_000
    assert sorted(targets["ENSG00000121410"]) == [
        "A1BG",
        "ABG",
        "ENSG00000121410",
        "GAB",
        "HYST2477",
    ]
    five_s = [s for s in targets["ENSG00000277411"] if s.startswith("ENSG")]
    assert {"ENSG00000277488", "ENSG00000288601", "ENSG00000277411"} <= set(five_s)
    # Values come out as plain Python, not numpy scalars.
    assert type(v2.medians["ENSG00000121410"]) is float
    assert v2.medians["ENSG00000121410"] == pytest.approx(1.7629378614450941, rel=1e-15)
    assert all(type(i) is int for i in v2.token_ids.values())
    assert len(v2.gene_ids()) == 20_271


def test_release_names_and_env_var(geneformer_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_DIR, str(geneformer_dir))
    assert len(resolve("v1")) == 25_426
    assert resolve("gc104M").name == "gc104M"
    monkeypatch.delenv(ENV_DIR)
    with pytest.raises(InputError, match="directory=.*GENOFORMER_GENEFORMER_DIR"):
        GeneVocabulary.geneformer("V2")
    with pytest.raises(InputError, match="use V1"):
        GeneVocabulary.geneformer("V3", geneformer_dir)


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_packaged_dictionaries_equal_geneformers_pickles(version, geneformer_dir) -> None:
    packaged = GeneVocabulary.packaged(version)
    assert packaged == GeneVocabulary.geneformer(version, geneformer_dir)
    assert list(packaged.token_ids) == list(
        GeneVocabulary.geneformer(version, geneformer_dir).token_ids
    )
    assert (PACKAGED / "NOTICE").read_text().count("Apache License") >= 2


def test_v1_and_v2_need_no_folder_on_a_fresh_install(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_DIR, raising=False)
    assert resolve("V2") == GeneVocabulary.packaged("V2")
    assert resolve("gc30M").name == "gc30M"
    # A folder (or the variable) still overrides the packaged copy, and is checked.
    with pytest.raises(InputError, match="no token_dictionary_gc104M.pkl"):
        resolve("V2", tmp_path)
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    with pytest.raises(InputError, match="no token_dictionary_gc104M.pkl"):
        resolve("V2")


def test_missing_pickles_are_named(tmp_path: Path, geneformer_dir: Path) -> None:
    with pytest.raises(InputError, match="no token_dictionary_gc104M.pkl") as error:
        GeneVocabulary.geneformer("V2", tmp_path)
    assert error.value.file == str(tmp_path)
    (tmp_path / "token_dictionary_gc104M.pkl").write_bytes(
        (geneformer_dir / "gc104M" / "token_dictionary_gc104M.pkl").read_bytes()
    )
    with pytest.raises(InputError, match="gene_median_dictionary_gc104M.pkl.*missing"):
        GeneVocabulary.geneformer("V2", tmp_path)


# -- the restricted unpickler -----------------------------------------------------------


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        ({"gene": _Evil()}, f"{os.system.__module__}.system"),
        ({"gene": _EvalEvil()}, "builtins.eval"),
        ({"gene": np.array([1.0, 2.0])}, "numpy"),
        ({"gene": {1, 2}}, None),  # sets are not allowed either (no global needed for them)
    ],
)
def test_malicious_pickles_are_refused(tmp_path: Path, payload: dict, refused: str | None) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(InputError) as error:
        load_pickle_dict(path)
    assert error.value.file == str(path)
    if refused is not None:
        assert "refused to unpickle" in str(error.value) and refused in str(error.value)


class _ObjectDtype:
    """Pickles as numpy.dtype("O"): the door to numpy scalars holding any object."""

    def __reduce__(self):
        return (np.dtype, ("O", False, True))


def test_object_dtype_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "object.pkl"
    path.write_bytes(pickle.dumps({"gene": _ObjectDtype()}))
    with pytest.raises(InputError, match="refused to unpickle.*numpy dtype 'object'"):
        load_pickle_dict(path)
    # A float64 scalar whose dtype bytes were edited to another type is refused too.
    data = pickle.dumps({"gene": np.float64(1.5)}, protocol=4)
    assert b"\x8c\x02f8" in data
    path.write_bytes(data.replace(b"\x8c\x02f8", b"\x8c\x02V8"))
    with pytest.raises(InputError, match="refused to unpickle.*numpy dtype"):
        load_pickle_dict(path)


def test_plain_pickles_load_as_python(tmp_path: Path) -> None:
    payload = {
        "a": np.int16(3),
        "b": np.float32(0.5),
        "c": [np.bool_(True), None, (1, "x")],
        "d": {"e": np.uint64(2**63)},
    }
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(payload))
    loaded = load_pickle_dict(path)
    assert loaded == {"a": 3, "b": 0.5, "c": [True, None, (1, "x")], "d": {"e": 2**63}}
    assert type(loaded["a"]) is int and type(loaded["b"]) is float
    assert type(loaded["c"][0]) is bool


def test_not_a_dict_or_not_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(InputError, match="holds a list, expected a dict"):
        load_pickle_dict(path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="not a readable dictionary pickle"):
        load_pickle_dict(path)
    with pytest.raises(InputError, match="file not found"):
        load_pickle_dict(tmp_path / "absent.pkl")


def test_real_pickles_reference_only_numpy_scalars(geneformer_dir: Path) -> None:
    referenced = set()
    for path in sorted(geneformer_dir.glob("gc*/*.pkl")):
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(path.read_bytes()):
            if "UNICODE" in op.name:
                strings.append(arg)
            elif op.name == "STACK_GLOBAL":
                referenced.add(tuple(strings[-2:]))
            elif op.name == "GLOBAL":
                referenced.add(tuple(arg.split(" ")))
    assert referenced == {("numpy", "dtype"), ("numpy.core.multiarray", "scalar")}


# -- our format -------------------------------------------------------------------------


def test_save_load_round_trip(v2: GeneVocabulary, tmp_path: Path) -> None:
    path = v2.save(tmp_path / "v2.json")
    loaded = GeneVocabulary.load(path)
    assert loaded == v2
    assert list(loaded.token_ids) == list(v2.token_ids)  # order kept too
    assert resolve(tmp_path / "v2.json") == v2
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_from_medians_token_order() -> None:
    vocab = GeneVocabulary.from_medians(
        {"ENSG3": 2.0, "ENSG1": 0.5, "ENSG2": 1.0}, name="mine", id_mapping={"X": "ENSG1"}
    )
    assert vocab.token_ids == {
        "<pad>": 0,
        "<mask>": 1,
        "<cls>": 2,
        "<eos>": 3,
        "ENSG1": 4,
        "ENSG2": 5,
        "ENSG3": 6,
    }
    assert vocab.gene_ids() == ["ENSG1", "ENSG2", "ENSG3"]
    assert vocab.has_cls_eos and vocab.input_size == 4096 and vocab.id_mapping == {"X": "ENSG1"}
    v1_like = GeneVocabulary.from_medians(
        {"G": 1.0}, name="v1", input_size=2048, special=("pad", "mask")
    )
    assert v1_like.token_ids == {"<pad>": 0, "<mask>": 1, "G": 2} and v1_like.cls_id is None


@pytest.mark.parametrize("median", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_medians_are_refused(median: float) -> None:
    with pytest.raises(InputError, match="median of G is"):
        GeneVocabulary.from_medians({"G": median}, name="bad")


def test_bad_files_are_named(tmp_path: Path, v1: GeneVocabulary) -> None:
    path = tmp_path / "vocab.json"
    path.write_text("{")
    with pytest.raises(InputError, match="not a JSON vocabulary"):
        GeneVocabulary.load(path)
    path.write_text('{"token_ids": {}}')
    with pytest.raises(InputError, match="not a genoformer gene vocabulary"):
        GeneVocabulary.load(path)
    small = GeneVocabulary.from_medians({"G": 1.0}, name="small")
    small.save(path)
    text = path.read_text().replace('"<cls>": 2', '"<cls>": 1')
    path.write_text(text)
    with pytest.raises(InputError, match="share a token id") as error:
        GeneVocabulary.load(path)
    assert error.value.file == str(path) and error.value.where == "token_ids"
    with pytest.raises(InputError, match="no such vocabulary file"):
        resolve(tmp_path / "absent.json")


_ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_medians = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    medians=st.dictionaries(_ids.filter(lambda s: not s.startswith("<")), _medians, max_size=30),
    symbols=st.dictionaries(_ids, _ids, max_size=10),
    mapping=st.dictionaries(_ids, _ids, max_size=10),
    input_size=st.integers(1, 1 << 20),
    name=_ids,
    special=st.sampled_from([("pad", "mask"), ("pad", "mask", "cls", "eos"), ()]),
)
def test_save_load_property(
    tmp_path: Path, medians, symbols, mapping, input_size, name, special
) -> None:
    vocab = GeneVocabulary.from_medians(
        medians,
        name=name,
        input_size=input_size,
        special=special,
        symbol_to_id=symbols,
        id_mapping=mapping,
    )
    loaded = GeneVocabulary.load(vocab.save(tmp_path / "vocab.json"))
    assert loaded == vocab
    assert all(loaded.medians[g] == medians[g] for g in medians)  # floats bit for bit
    assert loaded.gene_ids() == sorted(medians)
    assert len(loaded) == len(medians) + len(special)
