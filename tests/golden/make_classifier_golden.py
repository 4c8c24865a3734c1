#!/usr/bin/env python3
"""Reference test AUCs of the study's seven classifiers from scikit-learn, XGBoost and LightGBM (not from alnrisk).

    pip install numpy scikit-learn xgboost lightgbm
    python3 tests/golden/make_classifier_golden.py > tests/data/golden/classifiers_golden.json

Two seeded datasets from sklearn.datasets.make_classification, stored in the JSON with the results:
- "wide": 240 cases, 6 features (3 informative, 1 redundant), 160 train / 80 test;
- "study": 151 cases, 5 features (3 informative), 100 train / 51 test (the study's cohort sizes).
Each model is fitted on the training rows with library defaults (seeded where the model is random) and scored by
ROC AUC of predict_proba on the test rows. alnrisk's `tests/classifiers_golden.rs` requires its own rows to be within
0.05 of these.
"""
import json

import lightgbm
import numpy as np
import xgboost
from sklearn.datasets import make_classification
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

MODELS = {
    "Svm": lambda: SVC(probability=True, random_state=0),
    "Knn": lambda: KNeighborsClassifier(5),
    "DecisionTree": lambda: DecisionTreeClassifier(random_state=0),
    "RandomForest": lambda: RandomForestClassifier(100, random_state=0),
    "ExtraTrees": lambda: ExtraTreesClassifier(100, random_state=0),
    "XgboostStyle": lambda: xgboost.XGBClassifier(random_state=0),
    "LightgbmStyle": lambda: lightgbm.LGBMClassifier(random_state=0, verbose=-1),
}

out = {"versions": {"xgboost": xgboost.__version__, "lightgbm": lightgbm.__version__}}
for name, n, p, inf, ntrain, seed in [("wide", 240, 6, 3, 160, 11), ("study", 151, 5, 3, 100, 12)]:
    x, y = make_classification(n_samples=n, n_features=p, n_informative=inf, n_redundant=p - inf - 1 if p - inf > 1 else 0,
                               flip_y=0.05, class_sep=0.8, random_state=seed)
    # z-score with the training rows, as alnrisk's fit does before its classifiers
    sc = StandardScaler().fit(x[:ntrain])
    x = sc.transform(x)
    res = {}
    for m, make in MODELS.items():
        model = make().fit(x[:ntrain], y[:ntrain])
        res[m] = float(roc_auc_score(y[ntrain:], model.predict_proba(x[ntrain:])[:, 1]))
    out[name] = {"x": x.tolist(), "y": y.tolist(), "train": ntrain, "auc": res}
print(json.dumps(out))
