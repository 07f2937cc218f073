"""Reference models: the nets of the studies deepviz grew from, as LightningModules.

Each takes ``in_channels``, ``image_size`` and ``n_classes`` (saved as
hyperparameters, so ``StatsDB.load_model`` can rebuild it), logs
``train_loss``/``train_acc``/``val_loss``/``val_acc``, and uses ``nn.ReLU``
modules (not ``F.relu``) so guided backprop and deconvnet can hook them.
"""

from __future__ import annotations

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import nn

from deepviz.errors import ConfigurationError


class Classifier(L.LightningModule):
    """Shared training logic: cross-entropy, accuracy logging, Adam."""

    def __init__(self, lr: float = 1e-3, weight_decay: float = 0.0):
        super().__init__()
        self.lr = lr
        self.weight_decay = weight_decay

    def _flat_size(self, features: nn.Module, in_channels: int, image_size: int) -> int:
        with torch.no_grad():
            return int(features(torch.zeros(1, in_channels, image_size, image_size)).flatten(1).shape[1])

    def _step(self, batch, stage: str):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        on_step = stage == "train"
        self.log(f"{stage}_loss", loss, prog_bar=True, on_step=on_step, on_epoch=True, sync_dist=not on_step)
        self.log(f"{stage}_acc", acc, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class SmallNet(Classifier):
    """The default: a tiny conv net that trains on 8x8 digits in seconds."""

    def __init__(self, in_channels: int = 1, image_size: int = 8, n_classes: int = 10, lr: float = 3e-3):
        super().__init__(lr=lr)
        self.save_hyperparameters()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        features = nn.Sequential(self.conv1, self.relu1, self.conv2, self.relu2, self.pool)
        self.fc1 = nn.Linear(self._flat_size(features, in_channels, image_size), 64)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(64, n_classes)

    def forward(self, x):
        x = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        return self.fc2(self.relu3(self.fc1(x.flatten(1))))


class FC64Net(Classifier):
    """A small conv net with an FC64 -> FC10 head, as in the original deepViz study."""

    def __init__(self, in_channels: int = 3, image_size: int = 32, n_classes: int = 10, lr: float = 1e-3):
        super().__init__(lr=lr)
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.fc64 = nn.Linear(self._flat_size(self.features, in_channels, image_size), 64)
        self.relu = nn.ReLU()
        self.fc10 = nn.Linear(64, n_classes)

    def forward(self, x):
        return self.fc10(self.relu(self.fc64(self.features(x).flatten(1))))


class AlexNetSmall(Classifier):
    """The CIFAR/STL-10 net of the STL-10 study.

    conv5x5-96, maxpool 3x3, conv3x3-96, maxpool 3x3, fc384, fc192, fc10.
    """

    def __init__(self, in_channels: int = 3, image_size: int = 32, n_classes: int = 10, lr: float = 1e-3):
        super().__init__(lr=lr, weight_decay=5e-4)
        self.save_hyperparameters()
        self.conv1 = nn.Conv2d(in_channels, 96, 5, padding=2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(3, stride=2)
        self.conv2 = nn.Conv2d(96, 96, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(3, stride=2)
        features = nn.Sequential(self.conv1, self.relu1, self.pool1, self.conv2, self.relu2, self.pool2)
        self.fc1 = nn.Linear(self._flat_size(features, in_channels, image_size), 384)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(384, 192)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(192, n_classes)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc3(self.relu4(self.fc2(self.relu3(self.fc1(x.flatten(1))))))


class MnistCNN(Classifier):
    """conv5x5-32, pool, conv5x5-64, pool, fc1024, dropout, fc10 (the TensorFlow MNIST tutorial net)."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, n_classes: int = 10, lr: float = 1e-3, dropout: float = 0.5):
        super().__init__(lr=lr)
        self.save_hyperparameters()
        self.conv1 = nn.Conv2d(in_channels, 32, 5, padding=2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        features = nn.Sequential(self.conv1, self.relu1, self.pool1, self.conv2, self.relu2, self.pool2)
        self.fc1 = nn.Linear(self._flat_size(features, in_channels, image_size), 1024)
        self.relu3 = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, n_classes)

    def forward(self, x):
        x = self.pool2(self.relu2(self.conv2(self.pool1(self.relu1(self.conv1(x))))))
        return self.fc2(self.dropout(self.relu3(self.fc1(x.flatten(1)))))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(Classifier):
    """ResNet-18 adapted to small images: a 3x3 stem with no max-pool (the usual CIFAR variant)."""

    def __init__(self, in_channels: int = 3, image_size: int = 32, n_classes: int = 10, lr: float = 1e-3, width: int = 64):
        super().__init__(lr=lr, weight_decay=5e-4)
        self.save_hyperparameters()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, cin = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, n_classes)

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(self.pool(x).flatten(1))


MODELS: dict[str, type[Classifier]] = {
    "small": SmallNet,
    "fc64": FC64Net,
    "alexnet-small": AlexNetSmall,
    "mnist-cnn": MnistCNN,
    "resnet18": ResNet18,
}


def build_model(name: str, *, in_channels: int, image_size: int, n_classes: int, **kwargs) -> Classifier:
    """Instantiate a reference model by name."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ConfigurationError(f"Unknown model {name!r}. Available: {', '.join(MODELS)}.") from None
    return cls(in_channels=in_channels, image_size=image_size, n_classes=n_classes, **kwargs)
