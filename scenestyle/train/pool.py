"""History of generated images shown to the discriminator (Shrivastava et al.; CycleGAN ``ImagePool``)."""

from __future__ import annotations

import torch


class ImagePool:
    """Upstream semantics: until full, store and return each image; then with p = 0.5 return a
    stored image (replacing it with the new one), else the new one. Draws come from its own
    ``torch.Generator`` so the pool is checkpointed and resumed exactly."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Images for D, one per input image (detached)."""
        if self.size == 0:
            return images.detach()
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(1, generator=self.generator).item() > 0.5:
                i = int(torch.randint(0, self.size, (1,), generator=self.generator).item())
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [t.cpu() for t in self.images], "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.size = state["size"]
        self.images = [t.to(device) for t in state["images"]]
        self.generator.set_state(state["generator"])
