"""The named choices of jtex's settings, in one import-free module.

The modules that implement each choice re-export its tuple (``jtex.vgg.PADDINGS``,
``jtex.optimize.METHODS`` ...); the settings and the command line read them here,
so that ``jtex --help`` and setting errors answer without importing JAX.
"""

PADDINGS = ("valid", "same", "reflect", "circular")  # VGG and pyramid padding
POOLINGS = ("avg", "max")
NORMS = ("batch", "instance")  # Texture Networks' normalisation
UPSAMPLES = ("nearest", "bilinear")  # Texture Networks' x2 upsampling of the coarser stream
TEXNET_LOSSES = ("gatys", "multiscale", "swd")  # Texture Networks' training losses (jtex.texnet_config)
COMPUTE_DTYPES = ("float32", "bfloat16")  # VGG convolutions; Grams accumulate in float32
GRAM_NORMS = ("snelgrove", "gatys", "none")
JOIN_MODES = ("average", "max", "log_euclidean", "affine_invariant")
OPTIMIZERS = ("lbfgs-b", "lbfgs", "adam", "lbfgs-zoom", "jaxopt-lbfgs")
INIT_MODES = ("noise", "random", "symmetric")  # 'random' is 'noise', the CLI's word for it
IF_DISTANCES = ("l2", "lap1")
STATISTICS = ("gram", "meancov", "emd", "hist", "swd")  # texture statistics (jtex.losses)
LAYER_SCHEDULES = ("uniform", "linear", "geometric:Q")  # --layer-weights by name
SWD_PROJECTIONS = 4  # sliced Wasserstein directions per feature channel, drawn once per run (jtex.losses)
MARGIN = 8  # px synthesised beyond each side of a non-tiling output, then cropped
# 'valid' convolutions see an edge pixel in fewer windows than zero padding does, deep into the image: 8 px
# left a faint frame there (outer 4-px ring 0.72x the interior's contrast on a held-out stain photo, 320²).
VALID_MARGIN = 16
