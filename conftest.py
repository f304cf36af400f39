"""Root conftest: make $AEREC_DATA_HOME absolute (tests change directory), defaulting to ../shared/data."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent


def pytest_configure(config):
    home = os.environ.get("AEREC_DATA_HOME")
    if home:
        os.environ["AEREC_DATA_HOME"] = str(Path(home).resolve())
    elif (REPO.parent / "shared" / "data").is_dir():
        os.environ["AEREC_DATA_HOME"] = str(REPO.parent / "shared" / "data")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MPLBACKEND", "Agg")
