"""Training: configs (the shipped ones in `ccr_demo.training.configs`), datasets and samplers, losses and
objectives, checkpoints, the loop, and its command lines (`ccr_demo.training.cli`, the ablation's in
`ccr_demo.training.ablation`)."""
