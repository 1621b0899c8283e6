//! busdrain-filter: Service Bus subscription rule filters and actions.
