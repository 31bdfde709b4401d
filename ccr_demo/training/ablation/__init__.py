"""The paper's ablation: the plan, running it, the report."""
