"""Feature building, kept apart from the models that use it.

- :mod:`crm_ml.features.transactions`: the sold product lines, from the CRM or
  the raw Online Retail II files.
- :mod:`crm_ml.features.leads`: lead columns of Bank Marketing and X Education,
  which columns leak and why, preprocessing, reasons in a sales rep's words.
- :mod:`crm_ml.features.churn`: per-customer features and 90-day churn labels
  from orders (sales and cancellations), as of a cutoff date.
"""
