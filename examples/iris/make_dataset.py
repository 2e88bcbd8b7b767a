"""Regenerate datasets/iris/{measures,species}.csv from scikit-learn's bundled iris.

Run from this directory: ``python make_dataset.py``. The CSVs are committed,
so the example works without running this.
"""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_iris


def main(out_dir: Path = Path(__file__).parent / "datasets" / "iris") -> None:
    iris = load_iris(as_frame=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    measures = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    measures.to_csv(out_dir / "measures.csv", index=False, float_format="%.1f")
    species = iris.target.map(dict(enumerate(iris.target_names))).rename("species")
    species.to_csv(out_dir / "species.csv", index=False)
    print(f"wrote {len(measures)} rows to {out_dir}")


if __name__ == "__main__":
    main()
