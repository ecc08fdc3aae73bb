"""Feature building, kept apart from the models that use it.

- :mod:`crm_ml.features.transactions`: the sold product lines, from the CRM or
  the raw Online Retail II files (:func:`~crm_ml.features.transactions.load_transactions`:
  the CRM's, or the files' when the CRM has none), RFM and weekly revenue.
- :mod:`crm_ml.features.leads`: lead columns of Bank Marketing and X Education,
  which columns leak and why, preprocessing; :mod:`crm_ml.features.lead_reasons`
  says a lead's reasons in a sales rep's words.
- :mod:`crm_ml.features.churn`: the orders (sales and cancellations) from the CRM
  or the files, per-customer features and 90-day churn labels as of a cutoff date.
"""

__all__: list[str] = []
