"""Disentanglement metrics on codes and ground-truth factors, as disentanglement_lib computes them.

Each function takes `codes`, (n, code dims) floats, and `factors`, (n, factors) discrete ground-truth values
(integers or any labels; each column is relabelled 0..K-1), as numpy arrays or torch tensors. The
definitions follow google-research/disentanglement_lib (Locatello et al. 2019), whose arrays are
(dims, points); here a row is a point.

- `mig`: Mutual Information Gap (Chen et al. 2018), disentanglement_lib `metrics/mig.py`.
- `sap`: Separated Attribute Predictability (Kumar et al. 2018), `metrics/sap_score.py`, discrete factors.
- `dci`: Disentanglement, Completeness, Informativeness (Eastwood & Williams 2018), `metrics/dci.py`.

Where disentanglement_lib draws separate train and test samples from the simulator, `sap` and `dci` split
the points given here: a seeded random `test_fraction` of them is held out.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

from .errors import VaelabError, arg, positive_int


def _as_array(name: str, value, ndim_hint: str) -> np.ndarray:
    """value (numpy array, torch tensor or nested lists) as a 2-D float64 array: (n, dims)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise VaelabError(f"{arg(name)} must be an array of numbers, got {type(value).__name__} ({e})") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise VaelabError(f"{arg(name)} must be 2-D, {ndim_hint}; got shape {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise VaelabError(f"{arg(name)} holds NaN or infinite values; drop or fix those rows")
    return array


def _checked(codes, factors, min_codes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(codes as floats, factors relabelled 0..K-1 per column), both (n, dims), after every input check."""
    codes = _as_array("codes", codes, "(points, code dims)")
    factors = _as_array("factors", factors, "(points, factors)")
    if len(codes) != len(factors):
        raise VaelabError(f"{arg('codes')} has {len(codes)} rows but {arg('factors')} has {len(factors)}; "
                          "give one row of each per point")
    if len(codes) < 2:
        raise VaelabError(f"{arg('codes')} has {len(codes)} rows; give at least 2 points")
    if codes.shape[1] < min_codes:
        raise VaelabError(f"{arg('codes')} has {codes.shape[1]} dimension(s); this metric needs at least "
                          f"{min_codes} (it compares the best code dimension with the next)")
    if factors.shape[1] < 1:
        raise VaelabError(f"{arg('factors')} has no columns; give at least one factor")
    labels = np.empty(factors.shape, dtype=np.int64)
    for j in range(factors.shape[1]):
        values, labels[:, j] = np.unique(factors[:, j], return_inverse=True)
        if len(values) < 2:
            raise VaelabError(f"{arg('factors')} column {j} takes one value only ({values[0]:g}); a factor "
                              "must vary: drop that column")
    return codes, labels


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows): a seeded permutation of range(n), the last `test_fraction` held out."""
    if not 0 < test_fraction < 1:
        raise VaelabError(f"{arg('test_fraction')} must lie strictly between 0 and 1, got {test_fraction!r}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    return order[n_test:], order[:n_test]


def histogram_discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """Each code dimension cut into `bins` equal-width bins over its own range (disentanglement_lib
    `utils.histogram_discretize`: np.digitize against np.histogram's left edges, so labels run 1..bins)."""
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        out[:, i] = np.digitize(codes[:, i], np.histogram(codes[:, i], bins)[1][:-1])
    return out


def mutual_information_gaps(codes, factors, bins: int = 20) -> np.ndarray:
    """Per factor k: (I(z_a; v_k) - I(z_b; v_k)) / H(v_k), where z_a and z_b are the code dimensions with
    the largest and second largest mutual information with factor v_k (Chen et al. 2018, "Isolating
    Sources of Disentanglement in VAEs", eq. 5). Codes are discretised into `bins` equal-width bins per
    dimension; mutual information and entropy are the discrete ones of
    sklearn.metrics.mutual_info_score (in nats), as in disentanglement_lib `metrics/mig.py`."""
    bins = positive_int("bins", bins, "equal-width bins per code dimension")
    codes, labels = _checked(codes, factors, min_codes=2)
    binned = histogram_discretize(codes, bins)
    mi = np.array([[mutual_info_score(labels[:, k], binned[:, i]) for k in range(labels.shape[1])]
                   for i in range(binned.shape[1])])   # (code dims, factors)
    entropy = np.array([mutual_info_score(labels[:, k], labels[:, k]) for k in range(labels.shape[1])])
    top = np.sort(mi, axis=0)[::-1]
    return (top[0] - top[1]) / entropy


def mig(codes, factors, bins: int = 20) -> float:
    """Mutual Information Gap: the mean over factors of `mutual_information_gaps` (Chen et al. 2018;
    disentanglement_lib `metrics/mig.py`, "discrete_mig", with its default of 20 histogram bins). 1 when
    each factor is captured by one code dimension alone, 0 when no dimension tells it apart from another."""
    return float(np.mean(mutual_information_gaps(codes, factors, bins)))


def sap_matrix(codes, factors, test_fraction: float = 0.25, seed: int = 0) -> np.ndarray:
    """(code dims, factors): the test accuracy of predicting factor k from code dimension i alone with a
    linear SVM, sklearn LinearSVC(C=0.01, class_weight="balanced") fitted on the training rows: the
    discrete-factor score matrix of disentanglement_lib `metrics/sap_score.py` (continuous_factors=False,
    its default)."""
    codes, labels = _checked(codes, factors, min_codes=2)
    train, test = _split(len(codes), test_fraction, seed)
    scores = np.zeros((codes.shape[1], labels.shape[1]))
    for i in range(codes.shape[1]):
        for k in range(labels.shape[1]):
            if len(np.unique(labels[train, k])) < 2:
                raise VaelabError(f"{arg('factors')} column {k} takes one value on the training split; "
                                  "give more points")
            classifier = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
            classifier.fit(codes[train, i:i + 1], labels[train, k])
            scores[i, k] = np.mean(classifier.predict(codes[test, i:i + 1]) == labels[test, k])
    return scores


def sap(codes, factors, test_fraction: float = 0.25, seed: int = 0) -> float:
    """SAP score (Kumar et al. 2018, "Variational Inference of Disentangled Latent Concepts from Unlabeled
    Observations", sec. 3): the mean over factors of the gap between the best and second-best code
    dimension's score in `sap_matrix` (disentanglement_lib `compute_avg_diff_top_two`). High when one
    dimension alone predicts each factor; 0 when the dimensions predict it equally well. A one-feature
    linear SVM (one-vs-rest) separates only a few of a factor's values, so even codes equal to the factors
    score well below 1 when factors take many values (about 0.28 for factors of 5-10 values)."""
    top = np.sort(sap_matrix(codes, factors, test_fraction, seed), axis=0)
    return float(np.mean(top[-1] - top[-2]))


def _entropy_normalised(weights: np.ndarray, base: int) -> np.ndarray:
    """Entropy in base `base` of each column of non-negative weights, each normalised to sum to 1
    (scipy.stats.entropy's behaviour, which disentanglement_lib calls with 1e-11 added)."""
    p = weights + 1e-11
    p = p / p.sum(axis=0, keepdims=True)
    return -(p * np.log(p)).sum(axis=0) / np.log(base)


def dci_importances(codes, factors, test_fraction: float = 0.25, seed: int = 0,
                    trees: int = 100) -> tuple[np.ndarray, float, float]:
    """(importance matrix (code dims, factors), train accuracy, test accuracy): per factor, a sklearn
    GradientBoostingClassifier(n_estimators=`trees`) predicts the factor from all codes; its
    feature_importances_ fill that factor's column and its accuracies are averaged over factors
    (disentanglement_lib `metrics/dci.py`, `compute_importance_gbt`, which uses the default 100 trees)."""
    trees = positive_int("trees", trees, "boosting stages per factor")
    codes, labels = _checked(codes, factors)
    train, test = _split(len(codes), test_fraction, seed)
    importance = np.zeros((codes.shape[1], labels.shape[1]))
    train_acc, test_acc = [], []
    for k in range(labels.shape[1]):
        model = GradientBoostingClassifier(n_estimators=trees, random_state=seed)
        model.fit(codes[train], labels[train, k])
        importance[:, k] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(codes[train]) == labels[train, k]))
        test_acc.append(np.mean(model.predict(codes[test]) == labels[test, k]))
    return importance, float(np.mean(train_acc)), float(np.mean(test_acc))


def dci_from_importances(importance: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of an importance matrix R (code dims, factors), Eastwood & Williams
    2018: D = sum_i rho_i (1 - H_K(P_i.)), with P_i. row i of R normalised and rho_i its share of R;
    C = sum_k rho_k (1 - H_D(P_.k)), with P_.k column k normalised and rho_k its share (disentanglement_lib
    `disentanglement` and `completeness`; an all-zero R weighs every entry alike)."""
    importance = np.asarray(importance, dtype=np.float64)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    per_code = 1 - _entropy_normalised(importance.T, max(importance.shape[1], 2))
    per_factor = 1 - _entropy_normalised(importance, max(importance.shape[0], 2))
    if importance.shape[1] == 1:
        per_code = np.ones(importance.shape[0])   # one factor: every code is about that factor alone
    if importance.shape[0] == 1:
        per_factor = np.ones(importance.shape[1])
    disentanglement = np.sum(per_code * weights.sum(axis=1) / weights.sum())
    completeness = np.sum(per_factor * weights.sum(axis=0) / weights.sum())
    return float(disentanglement), float(completeness)


def dci(codes, factors, seed: int = 0, test_fraction: float = 0.25, trees: int = 100) -> dict[str, float]:
    """DCI (Eastwood & Williams 2018, "A Framework for the Quantitative Evaluation of Disentangled
    Representations"), as disentanglement_lib `metrics/dci.py` computes it: importances from gradient-boosted
    trees (`dci_importances`), then {"disentanglement", "completeness"} from `dci_from_importances` and
    "informativeness", the trees' mean test accuracy over factors ("informativeness_test"; the training
    accuracy is "informativeness_train"). Each lies in [0, 1], higher better."""
    importance, train_acc, test_acc = dci_importances(codes, factors, test_fraction, seed, trees)
    disentanglement, completeness = dci_from_importances(importance)
    return {"disentanglement": disentanglement, "completeness": completeness,
            "informativeness": test_acc, "informativeness_train": train_acc}


def disentanglement_metrics(codes, factors, seed: int = 0) -> dict:
    """mig, sap, dci_disentanglement, dci_completeness and dci_informativeness of codes against the factors
    that vary (a factor with one value, such as dsprites' colour, says nothing and is left out)."""
    factors = _as_array("factors", factors, "(points, factors)")
    varying = [j for j in range(factors.shape[1]) if len(np.unique(factors[:, j])) > 1]
    if not varying:
        raise VaelabError(f"{arg('factors')}: no factor takes more than one value; nothing to score")
    factors = factors[:, varying]
    scores = dci(codes, factors, seed=seed)
    return {"mig": mig(codes, factors), "sap": sap(codes, factors, seed=seed),
            "dci_disentanglement": scores["disentanglement"], "dci_completeness": scores["completeness"],
            "dci_informativeness": scores["informativeness"]}
