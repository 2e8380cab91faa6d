"""The trainer widget's Qt-free side: recipe, tagged layers -> dataset, the job."""
