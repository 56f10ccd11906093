"""Training: the HF Trainer core, distillation, fine-tuning and classifier heads."""
