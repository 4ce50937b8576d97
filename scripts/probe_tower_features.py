"""Linear probes: how well each layer of a vision tower tells a ShapesVQA object's colour and shape.

For each object of the first `--scenes` training scenes, the patch feature at the object's centre
is read from every hidden state of the tower (the image preprocessed by the tower's own image
processor); a logistic regression per layer (L-BFGS on standardised features, 80 / 20 split by
object) predicts the colour (7 classes) and the shape (4 classes). It separates "the tower does not
see it" from "the connector and the LLM have not learnt to read it".

    python scripts/probe_tower_features.py --tower ~/.cache/mqt-llava/backbones/dinov2-vit-s14 \\
        --data build/shapes --scenes 1000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from PIL import Image


def object_features(tower_dir: Path, data: Path, scenes: int):
    """`(features [objects, layers, width], colours, shapes, colour names, shape names)`."""
    from transformers import AutoImageProcessor, AutoModel

    tower = AutoModel.from_pretrained(tower_dir).eval()
    processor = AutoImageProcessor.from_pretrained(tower_dir)
    grid = tower.config.image_size // tower.config.patch_size
    records = json.loads((data / "train_scenes.json").read_text())[:scenes]
    colours = sorted({o["colour"] for s in records for o in s["objects"]})
    shapes = sorted({o["shape"] for s in records for o in s["objects"]})
    feats, y_colour, y_shape = [], [], []
    for scene in records:
        image = Image.open(data / scene["image"]).convert("RGB")
        inputs = processor(images=image, return_tensors="pt")
        with torch.no_grad():
            states = tower(**inputs, output_hidden_states=True)
        patches = torch.stack([h[0, -grid * grid :] for h in states.hidden_states])
        for o in scene["objects"]:
            row = min(grid - 1, int(o["y"] * grid / scene["height"]))
            col = min(grid - 1, int(o["x"] * grid / scene["width"]))
            feats.append(patches[:, row * grid + col])
            y_colour.append(colours.index(o["colour"]))
            y_shape.append(shapes.index(o["shape"]))
    return torch.stack(feats), torch.tensor(y_colour), torch.tensor(y_shape), colours, shapes


def probe(x: torch.Tensor, y: torch.Tensor, classes: int, train_fraction: float = 0.8) -> float:
    """Held-out accuracy of an L2-regularised logistic regression on standardised `x`."""
    n = int(train_fraction * len(x))
    x = (x - x[:n].mean(0)) / (x[:n].std(0) + 1e-5)
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=200)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x[:n] @ w + b, y[:n]) + 1e-3 * w.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return ((x[n:] @ w + b).argmax(1) == y[n:]).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tower", type=Path, required=True, help="a from_pretrained tower folder")
    parser.add_argument("--data", type=Path, required=True, help="a `mqt-llava data shapes` folder")
    parser.add_argument("--scenes", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    x, y_colour, y_shape, colours, shapes = object_features(args.tower, args.data, args.scenes)
    print(f"{len(x)} objects of {args.scenes} scenes, {time.perf_counter() - start:.0f} s")
    print("hidden state  colour  shape   (held-out accuracy; 0 = the embeddings)")
    for layer in range(x.shape[1]):
        colour = probe(x[:, layer], y_colour, len(colours))
        shape = probe(x[:, layer], y_shape, len(shapes))
        print(f"{layer:12d}  {colour:6.3f}  {shape:5.3f}")


if __name__ == "__main__":
    main()
