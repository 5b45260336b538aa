package tables

// RecommendationRow is one row of tables/recommendations.
type RecommendationRow struct {
	UserID       string  `parquet:"user_id"`
	Rank         int32   `parquet:"rank"`
	ItemID       string  `parquet:"item_id"`
	Score        float32 `parquet:"score"`
	ReasonItemID *string `parquet:"reason_item_id,optional"` // null for popularity fallbacks
	Source       string  `parquet:"source"`                  // model | popularity
	ModelVersion string  `parquet:"model_version"`
}

// PredictedItem is one item in a purchase prediction.
type PredictedItem struct {
	ItemID string  `parquet:"item_id"`
	Score  float32 `parquet:"score"`
}

// PurchasePredictionRow is one row of tables/purchase_predictions.
type PurchasePredictionRow struct {
	UserID         string          `parquet:"user_id"`
	PPurchase7d    float32         `parquet:"p_purchase_7d"`
	PredictedItems []PredictedItem `parquet:"predicted_items,list"`
	ModelVersion   string          `parquet:"model_version"`
}

// RejectRow is one rejected input row with its reason.
type RejectRow struct {
	File   string `parquet:"file"`
	Row    int64  `parquet:"row"`
	Column string `parquet:"column"`
	Reason string `parquet:"reason"`
	Value  string `parquet:"value"`
}

// VocabRow maps a dense index to an external id.
type VocabRow struct {
	Index int32  `parquet:"index"`
	ID    string `parquet:"id"`
}
