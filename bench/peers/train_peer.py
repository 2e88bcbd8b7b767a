"""Train the example's SVC once with scikit-learn alone and save it for the peers (run in venv-mlflow).

The same fit as examples/iris/notebooks/train.ipynb (SVC, C=1.0, linear
kernel, plain rows without feature names), written twice: ``clf.pkl`` for the
floor app, and an MLflow model directory (``mlflow.sklearn.save_model``) for
``mlflow models serve``. Also a RandomForest of 10 trees (``rf.pkl``,
``mlflow-model-rf``), the model of DESIGN §8 whose per-call cost batching
spreads over the rows of a batch.

    python train_peer.py DATASET_DIR OUT_DIR
"""

from __future__ import annotations

import pickle
import shutil
import sys
from pathlib import Path

import mlflow.sklearn
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.svm import SVC


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    measures = pd.read_csv(data / "measures.csv")
    species = pd.read_csv(data / "species.csv")["species"]
    clf = SVC(C=1.0, kernel="linear").fit(measures.to_numpy(), species.to_numpy())
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "clf.pkl", "wb") as handle:
        pickle.dump(clf, handle)
    shutil.rmtree(out / "mlflow-model", ignore_errors=True)
    mlflow.sklearn.save_model(clf, str(out / "mlflow-model"), input_example=measures.to_numpy()[:1])
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(measures.to_numpy(), species.to_numpy())
    with open(out / "rf.pkl", "wb") as handle:
        pickle.dump(forest, handle)
    shutil.rmtree(out / "mlflow-model-rf", ignore_errors=True)
    # MLflow stores sklearn models with skops, which asks to trust the tree type by name: we made this file.
    mlflow.sklearn.save_model(forest, str(out / "mlflow-model-rf"), input_example=measures.to_numpy()[:1],
                              skops_trusted_types=["sklearn.tree._tree.Tree"])
    print("saved", out)


if __name__ == "__main__":
    main()
