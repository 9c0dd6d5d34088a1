"""Reference discriminator dynamics of ``gan_ntk``: infinite width (ipm, lsgan, vanilla), finite ReLU net."""
