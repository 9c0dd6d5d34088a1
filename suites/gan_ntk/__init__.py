"""GAN training seen through the discriminator's neural tangent kernel (Franceschi et al. 2022)."""

from suites.gan_ntk.task import GanNTK

TASK = GanNTK()
