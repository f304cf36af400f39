"""The screenshots of the pages ``aerec serve`` shows (docs/guide/serving.md, docs/index.md): an ImageSearch fitted on 2,000 MNIST test
digits (as PNG files) and EASE on MovieLens-100K with its titles, in headless Chromium.

    AEREC_DATA_HOME=../shared/data python docs/screenshots.py      # writes docs/images/page-*.png

Needs Debian's chromium and chromium-driver, and the test extra (selenium)."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import aerec  # noqa: E402
import browser as browsers  # noqa: E402  (tests/browser.py)
from aerec.data.splits import implicit_positives  # noqa: E402
from aerec.server import create_app  # noqa: E402


def main() -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    if browsers.missing():
        sys.exit(f"needs {', '.join(browsers.missing())}")
    out = HERE / "images"
    out.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="aerec-screenshots-"))
    digits = aerec.datasets.mnist()
    folder = work / "digits"
    folder.mkdir()
    for j in range(2000):
        Image.fromarray(digits.images[j]).save(folder / f"{digits.labels[j]}-{j:04d}.png")
    aerec.ImageSearch(code_dim=16, epochs=15, seed=0, verbose=0).fit(folder).save(work / "images")
    ml = aerec.datasets.movielens_100k()
    aerec.EASE(l2=300.0).fit(implicit_positives(ml.ratings)).save(work / "ease")

    driver = browsers.chromium(work / "profile")
    wait = WebDriverWait(driver, 30)
    try:
        with browsers.Live(create_app(work / "images")) as base:
            driver.get(base + "/")
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#picker button img[src]")) == 24)
            driver.find_elements(By.CSS_SELECTOR, "#picker button")[4].click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .card img[src]")) == 12)
            driver.save_screenshot(str(out / "page-images.png"))
        with browsers.Live(create_app(work / "ease", titles=ml.items)) as base:
            driver.get(base + "/")
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#user-ids option"))
            driver.find_element(By.ID, "user").send_keys("42", Keys.ENTER)
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results li")) == 10
                       and d.find_elements(By.CSS_SELECTOR, "#based-on .chip"))
            driver.save_screenshot(str(out / "page-recommender.png"))
    finally:
        driver.quit()
    for name in ("page-images.png", "page-recommender.png"):
        image = Image.open(out / name)
        image.save(out / name, optimize=True)  # smaller in the repository
        print(f"wrote {out / name} ({image.size[0]}x{image.size[1]}, {np.asarray(image).mean():.0f} mean level)")


if __name__ == "__main__":
    main()
