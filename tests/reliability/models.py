"""A tiny net with BatchNorm, importable by the DDP test's subprocesses (StatsDB.load_model imports it)."""

from __future__ import annotations

from torch import nn

from trainers.models import Classifier


class BNNet(Classifier):
    """Conv + BatchNorm on 8x8 digits: its running statistics drift apart across DDP ranks."""

    def __init__(self, n_classes: int = 10, lr: float = 3e-2):
        super().__init__(lr=lr)
        self.save_hyperparameters()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8, momentum=0.5)
        self.relu1 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc1 = nn.Linear(32, 16)
        self.bn2 = nn.BatchNorm1d(16, momentum=0.5)
        self.relu2 = nn.ReLU()
        self.fc2 = nn.Linear(16, n_classes)

    def forward(self, x):
        x = self.pool(self.relu1(self.bn1(self.conv1(x)))).flatten(1)
        return self.fc2(self.relu2(self.bn2(self.fc1(x))))
