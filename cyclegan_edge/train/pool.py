"""The history of generated images (Shrivastava et al.), with state that survives a resume."""

from __future__ import annotations

from typing import Any

import torch


class ImagePool:
    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.gen = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Per image: while filling, store and return it; then with p=0.5 swap it for an old one."""
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img.cpu().clone())
                out.append(img)
            elif torch.rand(1, generator=self.gen).item() > 0.5:
                i = int(torch.randint(0, self.size, (1,), generator=self.gen).item())
                old = self.images[i].to(img.device, img.dtype)
                self.images[i] = img.cpu().clone()
                out.append(old)
            else:
                out.append(img)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, Any]:
        return {"images": list(self.images), "rng": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images = list(state["images"])
        self.gen.set_state(state["rng"])
