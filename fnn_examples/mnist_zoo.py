"""MNIST with four networks of the model zoo: LeNet-5, VGG-11-BN, ResNet-18 and a Vision Transformer.

    python -m fnn_examples.mnist_zoo [--models lenet vgg resnet18 vit] [--epochs 10] [--vit-epochs 20]

The PyTorch reference figures are LeNet 99.17%, VGG 98.57%, ResNet-18 99.42% (10 epochs each) and
ViT 97.14% (50 epochs); each model here trains 10 epochs (the ViT 20) and should beat its figure.
Widths are reduced where a 2-core CPU demands it (`--vgg-width`, `--resnet-width`, `--vit-*`):

- lenet:    LeNet-5 at full size (61,706 parameters), AdamW, peak lr 2e-3;
- vgg:      VGG-11-BN, small-input variant, width x0.25 (612,522), SGD + Nesterov, peak lr 0.05;
- resnet18: ResNet-18, CIFAR-style stem, width x0.25 (stages 16-32-64-128; 701,178), SGD + Nesterov, 0.1;
- vit:      ViT, patch 4 (49 patches + class token), dim 64, depth 6, 4 heads, MLP 128, tanh GELU
            (205,962), AdamW, peak lr 1e-3, gradient clipping.

All use softmax cross-entropy, batch 128, a warmup-cosine schedule, images in [0, 1] (standardising
them slowed the ViT's start), and random shifts of up to 2 pixels (random crops of the image padded
by 2 with zeros, the background; `--no-augment` turns them off). Each model writes
its history (train and test top-1 / top-5 error per epoch), plot and best checkpoint to
`--out/<model>/`; `zoo.md` holds the comparison table and `zoo.png` the test errors per epoch.
"""

from __future__ import annotations

from fnn import data, training
from fnn_examples import common, zoo_common

NAME = "mnist_zoo"
REFERENCE = {"lenet": 0.9917, "vgg": 0.9857, "resnet18": 0.9942, "vit": 0.9714}
REFERENCE_EPOCHS = {"lenet": 10, "vgg": 10, "resnet18": 10, "vit": 50}
PADDING = 2


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0], epochs=10, batch_size=128, lr=0.0, devices=("cpu", "gpu"))
    zoo_common.add_arguments(p, vit_epochs=20, widths={"vgg": 0.25, "resnet18": 0.25})
    args = p.parse_args(argv)
    out = common.out_dir(args, NAME)
    (x_train, y_train), (x_test, y_test) = common.load_image_data(data.mnist, args, quick_sizes=(512, 256))
    zoo_common.shrink_for_quick(args)
    augment = None if args.no_augment else zoo_common.augmentation(PADDING, flip=False)
    augmentation_text = ("none" if args.no_augment else
                         f"random shifts of up to {PADDING} pixels (crop, padding {PADDING})")

    rows = zoo_common.run_models(args, out, NAME, (x_train, y_train), (x_test, y_test), augment)
    for r in rows:
        r["reference"] = REFERENCE[r["model"]]

    table = zoo_common.markdown_table(rows, extra=(("PyTorch reference", "reference"),))
    text = (f"# MNIST: the model zoo\n\nBatch {args.batch_size}, warmup-cosine schedules, augmentation: "
            f"{augmentation_text}; {len(x_train)} training and {len(x_test)} test images. Test accuracy "
            f"after the last epoch and at the best epoch; the reference figures are a PyTorch project's "
            f"(10 epochs, the ViT 50). Seconds per epoch are training time on {common.machine()}.\n\n"
            f"{table}\n")
    training.write_text_atomic(out / "zoo.md", text)
    zoo_common.plot_comparison(rows, out / "zoo.png", f"MNIST, model zoo ({augmentation_text})")
    print(table, flush=True)

    summary = zoo_common.summary_of(rows, args, augmentation_text)
    for r in rows:
        m = r["model"]
        summary[f"{m}_reference"] = f"{100 * REFERENCE[m]:.2f}% after {REFERENCE_EPOCHS[m]} epochs (PyTorch)"
        summary[f"{m}_beats_reference"] = bool(r["test_accuracy"] > REFERENCE[m])
    common.write_summary(out, NAME, summary)
    return summary


if __name__ == "__main__":
    main()
